"""``Sandbox``: the public handle: world edits, fault injection, counters and usage headers."""

from __future__ import annotations

import json
import math
import threading
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from igrelay.sandbox import errors, login, routes
from igrelay.sandbox.data import LONG_LIVED, SHORT_LIVED, Media, SandboxData, demo_data
from igrelay.sandbox.errors import REFUSAL_STYLES, GraphErrorReply
from igrelay.sandbox.nodes import View
from igrelay.sandbox.transport import Server, bearer_token

FAULTS = {
    "5xx": errors.service_unavailable,
    "throttle": errors.buc_throttled,
    "throttle_app": errors.app_throttled,
    "unknown": errors.unknown_error,
    "expired_token": None,  # needs the clock, built in _fault_error
    "timeout": None,  # answers normally, after sb.timeout_delay seconds
}
LOG_SIZE = 10_000
LOGIN_TYPES = ("instagram", "facebook")
DEFAULT_APP_ID = "1000000000000001"
DEFAULT_APP_SECRET = "sandbox-app-secret"


@dataclass
class _Fault:
    kind: str
    remaining: int
    route: str | None


class Sandbox:
    """A local imitation of graph.instagram.com for igrelay's client, tests, ``igrelay dev`` and benches."""

    def __init__(
        self,
        data: SandboxData | None = None,
        latency: float = 0.0,
        version: str = "v25.0",
        port: int = 0,
        *,
        login_type: str = "instagram",
        app_id: str = DEFAULT_APP_ID,
        app_secret: str = DEFAULT_APP_SECRET,
        redirect_uris: list[str] | None = None,
        refusal_style: str = "mixed",
    ) -> None:
        if login_type not in LOGIN_TYPES:
            raise ValueError(f"login_type must be one of {LOGIN_TYPES}, not {login_type!r}")
        self.data = data if data is not None else demo_data(login_type=login_type)
        self.data.login_type = login_type
        self.latency, self.version, self.port = latency, version, port
        self.login = login.Login(login_type, app_id, app_secret, list(redirect_uris or []))
        self.refusal_style = refusal_style  # "mixed" or one of REFUSAL_STYLES, for unsupported metrics
        self.timeout_delay = 6.0  # longer than igrelay's 5 s read timeout
        self.usage_budget = 4800  # calls per account that would read 100 % in the usage headers
        self.empty_metrics: set[str] = set()  # metrics that answer "no data yet" (left out of data)
        self._withdrawn: set[str] = set()
        self._faults: list[_Fault] = []
        self._offset = timedelta()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: Server | None = None
        self.reset_calls()

    # lifecycle -----------------------------------------------------------------------------------
    def start(self) -> Sandbox:
        """Serve on 127.0.0.1 in a daemon thread; returns self."""
        self._stopping.clear()
        self._server = Server(("127.0.0.1", self.port), self.answer)
        self.port = self._server.server_address[1]
        serve = self._server.serve_forever
        threading.Thread(target=serve, args=(0.05,), name="igrelay-sandbox", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping answers and close every open connection."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._server = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to use as ``GRAPH_API_URL``."""
        return f"http://127.0.0.1:{self.port}"

    # world ---------------------------------------------------------------------------------------
    @property
    def accounts(self) -> list[str]:
        with self._lock:
            return list(self.data.accounts)

    @property
    def login_type(self) -> str:
        """``instagram`` (graph.instagram.com, Instagram Login) or ``facebook`` (graph.facebook.com)."""
        return self.login.login_type

    def token_for(self, account_id: str) -> str:
        """The account's configured token: its long-lived IG user token, or its Page token under Facebook Login."""
        with self._lock:
            if account_id not in self.data.accounts:
                raise KeyError(account_id)
            return self.data.account_token(account_id)

    def issue_token(self, account_id: str, age: float = 0.0, long_lived: bool = True) -> str:
        """A new user token for the account, issued ``age`` seconds ago (60 days' life, or 1 h if short-lived)."""
        with self._lock:
            issued = self.now() - timedelta(seconds=age)
            lifetime = LONG_LIVED if long_lived else SHORT_LIVED
            return self.data.add_token(account_id, issued, lifetime, long_lived=long_lived)

    def deny_media(self, media_id: str) -> None:
        """From now on the media's insights answer "(#10) Application does not have permission for this action"."""
        with self._lock:
            self.data.media[media_id].permission_denied = True

    def add_history(self, account_id: str, count: int, days: float = 180.0) -> None:
        """Give the account ``count`` more posts and reels, spread over ``days`` days before now (benchmarks)."""
        with self._lock:
            self.data.add_history(account_id, count, days, self.now())

    def add_media(
        self,
        account_id: str,
        media_product_type: str = "FEED",
        media_type: str = "IMAGE",
        timestamp: datetime | float | None = None,
        shared_to_facebook: bool = False,
        pre_conversion: bool = False,
        story_viewers: int = 100,
        caption: str = "",
    ) -> str:
        """Publish a media (a carousel gets two children); returns its id."""
        when = (
            timestamp
            if isinstance(timestamp, datetime)
            else (datetime.fromtimestamp(timestamp, UTC) if timestamp is not None else self.now())
        )
        with self._lock:
            media = self.data.add_media(
                account_id,
                media_product_type,
                media_type,
                when,
                caption=caption,
                shared_to_facebook=shared_to_facebook,
                pre_conversion=pre_conversion,
                story_viewers=story_viewers,
            )
            return media.id

    def media(self, media_id: str) -> Media:
        """The stored media (read-only use, please)."""
        with self._lock:
            return self.data.media[media_id]

    def delete_media(self, media_id: str) -> None:
        """From now on the media answers 100/33 and leaves the listings."""
        with self._lock:
            self.data.media[media_id].deleted = True

    def expire_token(self, account_id: str) -> None:
        """Every token of the account answers 190/463 from now on."""
        with self._lock:
            for token in self.data.tokens.values():
                token.expired = token.expired or token.account_id == account_id

    def withdraw_metric(self, name: str) -> None:
        """Meta removes a metric: requesting it now gets "(#100) metric[i] must be one of ..."."""
        with self._lock:
            self._withdrawn.add(name)

    def now(self) -> datetime:
        """The sandbox's clock: real time plus ``advance()``."""
        return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> None:
        """Move the sandbox's clock forward (stories expire, metric values grow)."""
        with self._lock:
            self._offset += timedelta(seconds=seconds)

    # faults --------------------------------------------------------------------------------------
    def fail_next(self, n: int, kind: str, route: str | None = None) -> None:
        """The next ``n`` requests (to ``route``, if given) fail with ``kind``; see FAULTS."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(FAULTS)}")
        with self._lock:
            self._faults.append(_Fault(kind, n, route))

    def _take_fault(self, route: str) -> str | None:
        for fault in self._faults:
            if fault.route in (None, route):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault.kind
        return None

    # counters ------------------------------------------------------------------------------------
    @property
    def calls(self) -> Counter[str]:
        """Requests received per route name (a copy)."""
        with self._lock:
            return Counter(self._calls)

    @property
    def total_calls(self) -> int:
        with self._lock:
            return sum(self._calls.values())

    @property
    def requests_log(self) -> list[dict[str, Any]]:
        """The last 10 000 requests: method, path, query (token redacted), auth (a token was sent), fault
        (the kind injected into its answer, or None)."""
        with self._lock:
            return list(self._log)

    @property
    def tokens_seen_in_url(self) -> int:
        with self._lock:
            return self._tokens_in_url

    def reset_calls(self) -> None:
        """Zero the counters, the log and the usage headers."""
        with self._lock:
            self._calls: Counter[str] = Counter()
            self._log: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)
            self._tokens_in_url = 0
            self._usage: Counter[str] = Counter()

    # answering -----------------------------------------------------------------------------------
    def answer(
        self, method: str, path: str, query: dict[str, str], form: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Status, JSON body and headers for one request; sleeps for latency and timeouts."""
        token = bearer_token(authorization) or query.get("access_token") or form.get("access_token")
        query_token = query.get("access_token")
        with self._lock:
            route = routes.resolve(self.data, path)
            fault = self._take_fault(route.name)
            self._record(method, path, query, route.name, token, fault)
        delay = self.latency + (self.timeout_delay if fault == "timeout" else 0)
        if delay > 0:
            self._stopping.wait(delay)
        with self._lock:
            call = self._call(route, method, {**form, **query}, token, query_token)
            status, body, headers = self._body(route, call, fault)
            return status, body, {**self._usage_headers(token, route, fault), **headers}

    def _call(
        self, route: routes.Route, method: str, params: dict[str, str], token: str | None, query_token: str | None
    ) -> routes.Call:
        if self.refusal_style not in ("mixed", *REFUSAL_STYLES):
            raise ValueError(f"refusal_style must be 'mixed' or one of {REFUSAL_STYLES}")
        view = View(
            self.data,
            self.now(),
            frozenset(self._withdrawn),
            frozenset(self.empty_metrics),
            self.login_type,
            self.refusal_style,
        )
        base = f"{self.url}/{route.version or self.version}"
        return routes.Call(method, params, token, view, base, query_token, self.login, route.path)

    def _body(self, route: routes.Route, call: routes.Call, fault: str | None) -> tuple[int, Any, dict[str, str]]:
        try:
            if fault and fault != "timeout":
                raise _fault_error(fault, call.view.now)
            body = routes.answer(route, call)
        except GraphErrorReply as exc:
            if self.login_type == "instagram":
                exc.on_instagram_host()
            return exc.status, exc.body(), {}
        if isinstance(body, login.Page):
            headers = {"Content-Type": "text/html; charset=utf-8"}
            return body.status, body.html, headers | ({"Location": body.location} if body.location else {})
        return 200, body, {}

    def _record(
        self, method: str, path: str, query: dict[str, str], route: str, token: str | None, fault: str | None
    ) -> None:
        self._calls[route] += 1
        shown = {k: ("<redacted>" if k == "access_token" else v) for k, v in query.items()}
        self._log.append({"method": method, "path": path, "query": shown, "auth": bool(token), "fault": fault})
        self._tokens_in_url += "access_token" in query
        known = self.data.tokens.get(token or "")
        if known is not None:
            self._usage[known.account_id] += 1
        self._usage[""] += 1  # the app as a whole

    def _usage_headers(self, token: str | None, route: routes.Route, fault: str | None) -> dict[str, str]:
        """X-App-Usage always; X-Business-Use-Case-Usage for account-scoped calls (percentages)."""
        # https://developers.facebook.com/docs/graph-api/overview/rate-limiting
        app = 100 if fault == "throttle_app" else self._percent(self._usage[""], len(self.data.accounts))
        headers = {
            "X-App-Usage": json.dumps({"call_count": app, "total_cputime": app // 2, "total_time": app // 2}),
            "facebook-api-version": route.version or self.version,
        }
        known = self.data.tokens.get(token or "")
        if known is not None or fault == "throttle":
            account = known.account_id if known else next(iter(self.data.accounts), "0")
            used = 100 if fault == "throttle" else self._percent(self._usage[account], 1)
            usage = {
                "type": "instagram",
                "call_count": used,
                "total_cputime": used // 3,
                "total_time": used // 2,
                "estimated_time_to_regain_access": int(fault == "throttle"),
            }
            headers["X-Business-Use-Case-Usage"] = json.dumps({account: [usage]})
        return headers

    def _percent(self, calls: int, accounts: int) -> int:
        return min(99, math.ceil(calls * 100 / (self.usage_budget * max(accounts, 1))))


def _fault_error(kind: str, now: datetime) -> GraphErrorReply:
    make = FAULTS[kind]
    return make() if make else errors.expired_token(now)
