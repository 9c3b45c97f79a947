"""The Graph API client: handed a ``requests.Session``, it sends, counts, classifies and degrades.

Tokens travel only in the ``Authorization: Bearer`` header, never in a URL, except to Meta's token
refresh endpoint, whose only documented form is the ``access_token`` query; every exception text is
redacted before it leaves (RQ stores exception texts in Redis). A token refreshed by
``workers.polling`` is kept in Redis (``igrelay:token:<account>``), sealed with ``IGRELAY_SECRET_KEY``
and bound to its account (``config.crypto.TokenBox``), and preferred over settings for as long as
the settings token it descends from is unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from config import accounts, budget, contract, crypto, stats
from config.logs import redact, register_secrets
from config.settings import Settings
from workers import breakdowns, graph, metric_registry
from workers.graph import AuthError, GraphError, MetricRejected, TransientError

log = logging.getLogger("igrelay.graph")
fingerprint = accounts.fingerprint  # where polling, check and the tests have always found it
_OUTCOMES = {
    graph.TransientError: "transient",
    graph.ThrottledError: "throttled",
    graph.AuthError: "auth",
    graph.TerminalError: "terminal",
    graph.MetricRejected: "rejected_metric",
    graph.TooFewViewers: "not_enough_viewers",
}


def new_session(pool: int = 16) -> requests.Session:
    """A Session whose connection pool fits ``pool`` threads."""
    session = requests.Session()
    session.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=pool))
    session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=pool))
    return session


def timeout_for(settings: Settings) -> tuple[float, float]:
    """(connect, read) timeouts in seconds (the TOML ``[graph]`` table, checked by ``Settings``)."""
    return settings.graph_timeout


@contextmanager
def open_client(settings: Settings, redis: Any = None, pool: int = 16, purpose: str = "other") -> Iterator[GraphClient]:
    """A client over a new Session sized for ``pool`` threads, with the configured timeouts; its calls are
    counted per account and hour under ``purpose`` (poll, media, insights, watchdog, token, backfill ...)."""
    with new_session(pool) as session:
        yield GraphClient(session, settings, redis, timeout_for(settings), purpose)


@dataclass
class MediaResult:
    """One media's node (id, types, permalink, timestamp), its metrics and what is unavailable."""

    node: dict[str, Any]
    metrics: dict[str, float]
    unavailable: dict[str, str] = field(default_factory=dict)
    breakdowns: breakdowns.Breakdowns = field(default_factory=dict)


class GraphClient:
    """Graph calls for one process or job; thread-safe as long as the Session's pool is big enough."""

    def __init__(
        self,
        session: requests.Session,
        settings: Settings,
        redis: Any = None,
        timeout: tuple[float, float] | None = None,
        purpose: str = "other",
    ) -> None:
        timeout = timeout or settings.graph_timeout
        self.session, self.settings, self.redis, self.timeout = session, settings, redis, timeout
        self.purpose = purpose
        self._paced: dict[str, float] = {}  # scope -> until when this client already pushed calls back

    def token(self, account: str) -> str | None:
        """The stored (refreshed or connected) token when it descends from the configured one, else the configured
        one (``config.accounts``: the environment's for an account it names, else a connected account's own)."""
        configured = self.settings.access_tokens.get(account) or self.settings.access_token
        if self.redis is None:
            return configured
        sealed, clear, source = self.redis.hmget(contract.token(account), "sealed", "token", "source")
        expected = accounts.mark(self.settings, account, source)
        configured = None if expected == accounts.CONNECTED else configured
        if (source or b"").decode() != expected or not (sealed or clear):
            return configured
        token = self._stored(account, sealed, clear)
        if token:
            register_secrets([token])
        return token or configured

    def _stored(self, account: str, sealed: bytes | None, clear: bytes | None) -> str | None:
        """Open the stored token; one stored in clear or under an older key is sealed again under the current one."""
        box = crypto.TokenBox.of(self.settings)
        if box is None:
            crypto.say_missing(log)
            return clear.decode() if clear and not sealed else None  # from before encryption; left as it was
        if not sealed:
            token = (clear or b"").decode()
            self._reseal(account, box, token)
            return token
        try:
            token, stale = box.open(account, sealed)
        except crypto.TokenRefused as exc:
            log.error("stored token refused; using the configured one", extra={"account": account, "error": str(exc)})
            return None
        if stale:
            self._reseal(account, box, token)
        return token

    def _reseal(self, account: str, box: crypto.TokenBox, token: str) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(contract.token(account), "sealed", box.seal(account, token))
            pipe.hdel(contract.token(account), "token")
            pipe.execute()

    def get(
        self, account: str, path: str, params: Mapping[str, str], requested: Sequence[str] = (), base: str | None = None
    ) -> Any:
        """GET ``{graph_base}/{path}`` for ``account``; the decoded body, or a ``GraphError``."""
        return self.request("GET", account, path, params, requested=requested, base=base)

    def request(
        self,
        method: str,
        account: str,
        path: str,
        params: Mapping[str, str] | None = None,
        requested: Sequence[str] = (),
        base: str | None = None,
        token: str | None = None,
        token_in_query: bool = False,
    ) -> Any:
        """``method`` on ``{graph_base}/{path}`` with ``token`` (default: the account's); body or ``GraphError``.

        ``token_in_query`` is for Meta's token endpoints alone, whose documented form takes it there."""
        token = token or self.token(account)
        if not token:
            raise AuthError(f"no access token configured for account {account}")
        url = f"{base or self.settings.graph_base}/{path}"
        headers = {"Authorization": f"Bearer {token}"}  # never in the URL: URLs end up in logs
        if token_in_query:
            headers, params = {}, {**(params or {}), "access_token": token}
        try:
            reply = self.session.request(method, url, params=params, timeout=self.timeout, headers=headers)
            body = reply.json() if reply.content else None
        except (requests.RequestException, ValueError) as exc:
            self._count(account, "transient")
            # from None: the chained requests exception would carry its own text into RQ's stored traceback.
            raise TransientError(_clean(f"{type(exc).__name__}: {exc}", token)) from None
        self._pace(account, reply.headers)
        if reply.status_code == 200 and isinstance(body, dict) and "error" not in body:
            self._count(account, "ok")
            return body
        error = graph.classify(reply.status_code, body, reply.headers, requested)
        error.args = (_clean(str(error), token),)
        self._count(account, next((v for k, v in _OUTCOMES.items() if isinstance(error, k)), "error"))
        raise error

    def _count(self, account: str, outcome: str) -> None:
        """Count the call: by outcome for ``/metrics``, and against the account's hourly budget at Meta."""
        if self.redis is None:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            stats.incr(pipe, "igrelay_graph_calls_total", outcome=outcome)
            if account:
                budget.count(pipe, account, self.purpose)
            pipe.execute()

    def _pace(self, account: str, headers: Mapping[str, str]) -> None:
        """Above ``PACE_FROM`` % in a usage header, push back the app's or the account's next calls."""
        if self.redis is None or not account:
            return
        app, business = graph.usage_percent(headers)
        for scope, percent in (("app", app), ("account", business)):
            seconds = graph.pace_seconds(percent)
            if seconds and self._paced.get(scope, 0) < time.time():
                self._paced[scope] = time.time() + seconds
                accounts = [account, *self.settings.accounts] if scope == "app" else [account]
                pause_accounts(self.redis, dict.fromkeys(accounts), seconds)
                stats.incr(self.redis, "igrelay_rate_limit_paced_total", scope=scope)

    def describe(self, account: str, media_id: str) -> dict[str, Any]:
        """The media node alone (for media first heard of through a webhook)."""
        return graph.parse_media(self.get(account, media_id, graph.media_params([])), [])[0]

    def media(self, account: str, media_id: str, kind: str, media_type: str | None = None) -> MediaResult:
        """Metadata and insights of one media in one call, degrading past refused metrics."""

        def call(metrics: list[str]) -> MediaResult:
            body = self.get(account, media_id, graph.media_params(metrics), requested=metrics)
            return MediaResult(*graph.parse_media(body, metrics))

        result = self._degrading(kind, media_type, call)
        for metric, breakdown in metric_registry.media_breakdowns(self.settings, result.metrics):
            result.breakdowns.update(self.media_breakdown(account, media_id, metric, breakdown))
        return result

    def media_breakdown(self, account: str, media_id: str, metric: str, breakdown: str) -> breakdowns.Breakdowns:
        """One metric of a media by its breakdown, in a call of its own; empty when Meta gives none or fails."""
        params = {"metric": metric, "breakdown": breakdown}
        try:
            body = self.get(account, f"{media_id}/insights", params, requested=[metric])
        except (graph.ThrottledError, AuthError):
            raise
        except GraphError:  # a refused breakdown is Meta's "unknown error" (code 1); the media's values still stand
            return {}
        return breakdowns.parse(body.get("data"), [metric])

    def account_insights(self, account: str, since: int, until: int) -> MediaResult:
        """Daily account totals for ``[since, until]``, degrading past refused metrics."""

        def call(metrics: list[str]) -> MediaResult:
            params = graph.account_params(metrics, since, until)
            body = self.get(account, f"{account}/insights", params, requested=metrics)
            return MediaResult({"id": account}, *graph.parse_insights(body.get("data"), metrics))

        return self._degrading(metric_registry.ACCOUNT, None, call)

    def _degrading(self, kind: str, media_type: str | None, call: Callable[[list[str]], MediaResult]) -> MediaResult:
        """Run ``call`` with the planned metrics, dropping refused ones; remember what Meta refused or restored."""
        version = self.settings.graph_api_version
        planned = metric_registry.plan(self.settings, self.redis, kind, media_type)
        search = _Degrade(call)
        result = search.run(planned.ask)
        refused = set(search.refused)
        metric_registry.withdraw(self.redis, version, kind, media_type, sorted(refused))  # every worker learns it
        metric_registry.restore(self.redis, version, kind, media_type, [m for m in planned.probing if m not in refused])
        result.unavailable.update(metric_registry.unsupported([*planned.gone, *search.refused]))
        return result

    def listing(self, account: str, edge: str, after: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``/{account}/{edge}`` (``media`` or ``stories``), newest first."""
        return graph.parse_listing(self.get(account, f"{account}/{edge}", graph.listing_params(after=after)))

    def followers_count(self, account: str) -> int | None:
        """The running follower total from the user node (``follower_count`` is a daily delta)."""
        value = self.get(account, account, {"fields": "followers_count"}).get("followers_count")
        return value if isinstance(value, int) else None

    def refresh_token(self, account: str, now: float | None = None) -> tuple[str, int]:
        """A refreshed long-lived Instagram Login token and its lifetime in seconds; stored sealed in Redis."""
        box = crypto.TokenBox.of(self.settings)
        if box is None:  # a refreshed token that cannot be kept would be lost: don't ask for one
            raise crypto.KeyMissing(crypto.MISSING)
        # Meta documents only the access_token query form here (never logged: see config.logs):
        # https://developers.facebook.com/documentation/instagram-platform/reference/refresh_access_token
        params = {"grant_type": "ig_refresh_token"}
        body = self.request(
            "GET", account, "refresh_access_token", params, base=self.settings.graph_api_url, token_in_query=True
        )
        token, lifetime = str(body.get("access_token") or ""), int(body.get("expires_in") or 0)
        if not token:
            raise GraphError("refresh_access_token answered without a token")
        register_secrets([token])
        self.store_token(account, token, lifetime, now)
        return token, lifetime

    def store_token(self, account: str, token: str, lifetime: int, now: float | None = None) -> None:
        """Keep ``token`` sealed as the account's current one (never logged); ``KeyMissing`` without a key."""
        box = crypto.TokenBox.of(self.settings)
        if box is None:
            raise crypto.KeyMissing(crypto.MISSING)
        now = now or time.time()
        mapping = {
            "sealed": box.seal(account, token),
            "issued_at": int(now),
            "expires_at": int(now + lifetime),
            "source": accounts.mark(self.settings, account, self.redis.hget(contract.token(account), "source")),
        }
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(contract.token(account), mapping=mapping)
            pipe.hdel(contract.token(account), "token", "not_before")
            pipe.execute()


def pause_accounts(redis: Any, accounts: Iterable[str], seconds: int, now: float | None = None) -> None:
    """Pause ``accounts`` for ``seconds`` unless a pause already runs (a throttle's pause is never shortened)."""
    until = int((now or time.time()) + seconds)
    pipe = redis.pipeline(transaction=False)
    for account in accounts:
        pipe.set(contract.paused_until(account), until, ex=max(seconds, 1), nx=True)
    pipe.execute()


class _Degrade:
    """Asks for metrics past Meta's refusals: named ones are dropped; unnamed ones are found by halves.

    For k refusals Meta does not attribute among n metrics this costs at most k x ceil(log2 n) calls
    more than if Meta had named them (one call each). When two metrics have been found and still
    nothing answers, the error is about the media, not its metrics: it is raised and nothing is remembered.
    """

    def __init__(self, call: Callable[[list[str]], MediaResult]) -> None:
        self.call, self.refused = call, list[str]()
        self.result: MediaResult | None = None
        self.first: MetricRejected | None = None

    def run(self, metrics: list[str]) -> MediaResult:
        """The merged result of every successful call."""
        pending = self.ask(metrics)
        while pending:
            culprit, untested = self.isolate(pending)
            self.refused.append(culprit)
            pending = self.ask(untested) if untested else []
            if pending and self.result is None and len(self.refused) >= 2:
                raise self.first or GraphError("no metrics answer")  # nothing ever answers: the media, not a metric
        if self.result is None:
            return self.call([])  # every metric refused: the node alone
        return self.result

    def ask(self, metrics: list[str]) -> list[str]:
        """Ask for ``metrics``, dropping named refusals; [] when answered, else the metrics refused unattributed."""
        while True:
            if not metrics and self.result is not None:
                return []
            try:
                self.merge(self.call(metrics))
                return []
            except MetricRejected as exc:
                self.first = self.first or exc
                named = [m for m in exc.metrics if m in metrics]
                if not named:
                    if not metrics:
                        raise
                    return metrics
                self.refused += named
                metrics = [m for m in metrics if m not in named]

    def isolate(self, bad: list[str]) -> tuple[str, list[str]]:
        """Halve a refused set down to one refused metric; returns it and the halves left unasked."""
        untested: list[str] = []
        while len(bad) > 1:
            half, rest = bad[: len(bad) // 2], bad[len(bad) // 2 :]
            left = self.ask(half)
            if left:  # the refusal is in this half; the other is still to be asked
                bad, untested = left, rest + untested
            else:
                bad = rest
        return bad[0], untested

    def merge(self, part: MediaResult) -> None:
        if self.result is None:
            self.result = part
            return
        self.result.node = self.result.node or part.node
        self.result.metrics.update(part.metrics)
        self.result.unavailable.update(part.unavailable)


def _clean(text: str, token: str) -> str:
    """``text`` without the token or anything token-shaped."""
    return redact(text.replace(token, "***") if token else text)
