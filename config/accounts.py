"""The account registry: the environment's accounts and connected ones, one list every part uses.

An account comes from ``IG_ACCESS_TOKENS`` (source ``env``) or from Meta's login flow (``connected``:
its id in ``igrelay:accounts``, its details in ``igrelay:account:ID:info``, its token sealed with
``IGRELAY_SECRET_KEY`` in ``igrelay:token:ID`` with ``source`` = ``connected``). The environment wins for
an account it names. ``IG_ACCESS_TOKEN`` serves any account without a token of its own. A token's
``source`` mark says which configured token a stored one descends from, so a changed environment
token starts over and a flag for a refused token is cleared by a new one::

    ids(redis, settings) -> ["1784...", ...]        token(redis, settings, id) -> str | None
    connect(redis, settings, Login(...))            remove(redis, settings, id)
    pause / resume / flag / flagged / describe      mark(settings, id, stored_source) -> str
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from config import budget, contract, crypto, periodic
from config.settings import Settings

ENV, CONNECTED = "env", "connected"
FOREVER = 100 * 365 * 86400  # an operator's pause without an end: lifted only by resume


class AccountError(ValueError):
    """An account operation that cannot be done; the text says why and what to do."""


def fingerprint(token: str | None) -> str:
    """A short, non-reversible tag of a token, safe to store next to it."""
    return hashlib.sha256((token or "").encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Login:
    """An account Meta's login flow handed us: its id (the one webhooks carry), token and details."""

    id: str
    username: str
    token: str = field(repr=False)
    expires_in: int | None = None  # seconds; None for a Page token that does not expire
    page_id: str = ""
    login_type: str = "instagram"


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def connected_ids(redis: Any) -> list[str]:
    """Accounts connected through the login flow, sorted."""
    return sorted(text(a) for a in redis.smembers(contract.ACCOUNTS))


def ids(redis: Any, settings: Settings) -> list[str]:
    """Every account: the environment's, then the connected ones it does not name."""
    env = list(settings.access_tokens)
    if redis is None:
        return env
    return env + [a for a in connected_ids(redis) if a not in settings.access_tokens]


def source(redis: Any, settings: Settings, account: str) -> str | None:
    """``env``, ``connected`` or None (unknown)."""
    if account in settings.access_tokens:
        return ENV
    return CONNECTED if redis is not None and redis.sismember(contract.ACCOUNTS, account) else None


def mark(settings: Settings, account: str, stored_source: str | bytes | None) -> str:
    """The ``source`` a stored token of ``account`` must carry to be used: the environment's token's
    fingerprint (its own, or ``IG_ACCESS_TOKEN`` for an account without one), or ``connected``."""
    own = settings.access_tokens.get(account)
    if own:
        return fingerprint(own)
    if text(stored_source) == CONNECTED:
        return CONNECTED
    return fingerprint(settings.access_token)


# KEYS: the needs_reauth key, the token hash. ARGV: the environment's mark, "1" when a connected token may
# stand in (no token of its own in the environment). The flag is the mark of the token Meta refused.
_FLAG_LUA = """
local src = redis.call('HGET', KEYS[2], 'source')
if ARGV[2] == '1' and src == 'connected' then
  redis.call('SET', KEYS[1], 'connected')
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""


def flag(redis: Any, settings: Settings, account: str) -> None:
    """Mark ``account`` as needing reconnection (``redis`` may be a pipeline); a new token clears it."""
    env = fingerprint(settings.access_tokens.get(account) or settings.access_token)
    own = "0" if account in settings.access_tokens else "1"
    redis.eval(_FLAG_LUA, 2, contract.needs_reauth(account), contract.token(account), env, own)
    periodic.soon(redis, periodic.STATUS, account, time.time())  # said to the operator on the next tick


def flagged(redis: Any, settings: Settings, account: str) -> bool:
    """True while the account's refused token is still the one it would use."""
    value, src = redis.get(contract.needs_reauth(account)), redis.hget(contract.token(account), "source")
    return value is not None and text(value) == mark(settings, account, src)


def token(redis: Any, settings: Settings, account: str) -> str | None:
    """The token to call Meta with for ``account`` (a refreshed one when it descends from the configured one)."""
    configured = settings.access_tokens.get(account)
    if redis is None:
        return configured or settings.access_token
    sealed, src = redis.hmget(contract.token(account), "sealed", "source")
    if configured or text(src) != CONNECTED:
        if sealed and text(src) == mark(settings, account, src):
            return _open(settings, account, sealed) or configured or settings.access_token
        return configured or settings.access_token
    return _open(settings, account, sealed) if sealed else None


def _open(settings: Settings, account: str, sealed: bytes) -> str | None:
    box = crypto.TokenBox.of(settings)
    if box is None:
        return None
    try:
        return box.open(account, sealed)[0]
    except crypto.TokenRefused:
        return None


def connect(redis: Any, settings: Settings, login: Login, now: float | None = None) -> None:
    """Store a connected account, its token sealed; clears a needs_reconnect flag. ``AccountError`` when the
    environment names it (its token is changed there) or no ``IGRELAY_SECRET_KEY`` can seal it."""
    if login.id in settings.access_tokens:
        raise AccountError(
            f"account {login.id} (@{login.username}) takes its token from IG_ACCESS_TOKENS: change the token there"
        )
    box = crypto.TokenBox.of(settings)
    if box is None:
        raise AccountError(crypto.MISSING)
    now = now or time.time()
    token_fields: dict[str, Any] = {"sealed": box.seal(login.id, login.token), "source": CONNECTED}
    token_fields["issued_at"] = int(now)
    info = {"username": login.username, "login_type": login.login_type, "connected_at": int(now)}
    if login.page_id:
        info.update(page_id=login.page_id, page_sealed=box.seal("page:" + login.id, login.token))
    with redis.pipeline(transaction=True) as pipe:
        pipe.delete(contract.token(login.id), contract.needs_reauth(login.id), contract.announced(login.id))
        pipe.hset(contract.token(login.id), mapping=token_fields)
        if login.expires_in:
            pipe.hset(contract.token(login.id), "expires_at", int(now + login.expires_in))
        pipe.hset(contract.account_info(login.id), mapping=info)
        pipe.sadd(contract.ACCOUNTS, login.id)
        pipe.execute()
    periodic.enter(redis, settings, [login.id], now)
    periodic.soon(redis, periodic.STATUS, login.id, now)  # a reconnection clears the flag: count it now


def info(redis: Any, account: str) -> dict[str, str]:
    """The connected account's details (``{}`` for an environment account)."""
    return {text(k): text(v) for k, v in redis.hgetall(contract.account_info(account)).items()}


def note_subscribed(redis: Any, account: str, fields: Iterable[str]) -> None:
    """Remember the webhook fields the account was last subscribed to (shown by ``igrelay accounts``)."""
    redis.hset(contract.account_info(account), "subscribed", ",".join(fields))


def page(redis: Any, settings: Settings, account: str) -> tuple[str, str] | None:
    """A connected Facebook Login account's Page id and Page token, or None."""
    page_id, sealed = redis.hmget(contract.account_info(account), "page_id", "page_sealed")
    token_ = _open(settings, "page:" + account, sealed) if page_id and sealed else None
    return (text(page_id), token_) if token_ else None


def remove(redis: Any, settings: Settings, account: str) -> None:
    """Forget a connected account: its token, details, schedule and backfill; its work stops."""
    if account in settings.access_tokens:
        raise AccountError(f"account {account} comes from IG_ACCESS_TOKENS: remove it there")
    if not redis.sismember(contract.ACCOUNTS, account):
        raise AccountError(f"no connected account {account}")
    due = [m for m, _ in redis.zscan_iter(contract.FETCH_DUE, match=contract.media_member(account, "*"), count=500)]
    with redis.pipeline(transaction=True) as pipe:
        pipe.srem(contract.ACCOUNTS, account)
        pipe.srem(contract.BACKFILLS, account)
        if due:
            pipe.zrem(contract.FETCH_DUE, *due)
            pipe.hdel(contract.FETCH_TRIGGER, *due)
        keys = (contract.token(account), contract.account_info(account), contract.needs_reauth(account))
        pipe.delete(*keys, contract.announced(account), contract.backfill(account), contract.known_media(account))
        pipe.delete(contract.paused_until(account), contract.watchdog(account))
        periodic.leave(pipe, account)
        pipe.execute()


def pause(redis: Any, account: str, seconds: int | None = None) -> None:
    """Hold the account's work for ``seconds`` (None: until resumed), as a throttle from Meta would."""
    seconds = seconds or FOREVER
    redis.set(contract.paused_until(account), int(time.time() + seconds), ex=seconds)


def resume(redis: Any, account: str) -> None:
    """Let the account's work run again."""
    redis.delete(contract.paused_until(account))


def known(redis: Any, settings: Settings, account: str) -> bool:
    """True for an account of the registry."""
    return source(redis, settings, account) is not None


def require(redis: Any, settings: Settings, account: str) -> str:
    """``account`` when the registry has it, else ``AccountError``."""
    if not known(redis, settings, account):
        raise AccountError(f"no account {account}: see `igrelay accounts`")
    return account


def active(redis: Any, settings: Settings, accounts: Iterable[str] | None = None) -> list[str]:
    """Accounts neither paused nor waiting to be reconnected."""
    found = list(ids(redis, settings) if accounts is None else accounts)
    if not found:
        return []
    pipe = redis.pipeline(transaction=False)
    for account in found:
        pipe.exists(contract.paused_until(account))
        pipe.get(contract.needs_reauth(account))
        pipe.hget(contract.token(account), "source")
    answers = pipe.execute()
    out = []
    for n, account in enumerate(found):
        paused, flagged, src = answers[3 * n : 3 * n + 3]
        if not paused and not (flagged is not None and text(flagged) == mark(settings, account, src)):
            out.append(account)
    return out


def backfill_status(redis: Any, account: str, now: float | None = None) -> dict[str, Any] | None:
    """The account's backfill progress (None when it never had one), with an ETA in seconds."""
    state = {text(k): text(v) for k, v in redis.hgetall(contract.backfill(account)).items()}
    if not state:
        return None
    now = now or time.time()
    found, done = int(state.get("media_found") or 0), int(state.get("media_done") or 0)
    wanted, days = int(state.get("days_wanted") or 0), int(state.get("days_done") or 0)
    started, finished = float(state.get("started_at") or now), state.get("finished_at")
    listed = state.get("listed") == "1"
    since, reached = float(state.get("since") or 0), float(state.get("reached") or started)
    # The listing's length is unknown until it reaches ``since``: how far back it got stands in for it.
    listing = 1.0 if listed else max(0.0, min(1.0, (started - reached) / max(started - since, 1.0)))
    fraction = 0.7 * listing + 0.3 * (days / wanted if wanted else 1.0)
    elapsed = now - started
    eta = None if finished or fraction <= 0 else elapsed * (1 - fraction) / fraction
    return {
        "account": account,
        "state": "done" if finished else "running",
        "media_found": found,
        "media_done": done,
        "listed": listed,
        "days_wanted": wanted,
        "days_done": days,
        "since": int(since),
        "started_at": int(started),
        "finished_at": int(float(finished)) if finished else None,
        "eta_seconds": None if eta is None else int(eta),
    }


def describe(redis: Any, settings: Settings, account: str, now: float | None = None) -> dict[str, Any]:
    """What ``igrelay accounts`` and the console show of an account."""
    now = now or time.time()
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(contract.account_info(account))
    pipe.hmget(contract.token(account), "source", "expires_at")
    pipe.get(contract.paused_until(account))
    pipe.get(contract.last_delivery(account))
    hour = budget.current_hour(now)
    pipe.hgetall(contract.account_calls(account, hour - 1))
    pipe.hgetall(contract.account_calls(account, hour))
    details, (src, expires), paused, last, calls_before, calls_now = pipe.execute()
    details = {text(k): text(v) for k, v in details.items()}
    paused_until = int(text(paused)) if paused and int(text(paused)) > now else None
    return {
        "id": account,
        "username": details.get("username", ""),
        "source": ENV if account in settings.access_tokens else CONNECTED,
        "login_type": details.get("login_type") or settings.login_type,
        "token_expires": int(float(text(expires))) if expires and text(src) == mark(settings, account, src) else None,
        "subscribed": [f for f in details.get("subscribed", "").split(",") if f],
        "last_delivery": float(text(last)) if last else None,
        "paused_until": paused_until,
        "paused_forever": bool(paused_until and paused_until > now + FOREVER / 2),
        "needs_reconnect": flagged(redis, settings, account),
        "backfill": backfill_status(redis, account, now),
        "graph_calls": _calls(calls_before, calls_now),
    }


def _calls(before: dict[Any, Any], current: dict[Any, Any]) -> dict[str, Any]:
    """The account's Graph calls: the last whole clock hour (by purpose) and this one so far."""
    by_purpose = {text(k): int(v) for k, v in before.items()}
    return {"last_hour": sum(by_purpose.values()), "this_hour": sum(int(v) for v in current.values()), **by_purpose}
