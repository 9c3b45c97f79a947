"""Accounts that need a person: a refused token, or one about to expire unrefreshed, said once.

``due`` (a tick task) looks at the accounts due (each hourly at its phase, and at once when flagged or
reconnected; ``config.periodic``): one whose token Meta refused (flagged by
fetch, polling or refresh) or whose Instagram Login token is within ``EXPIRY_WARNING`` of its end (a
refreshable token is refreshed long before: it was not) is ``needs_reconnect``; each such state goes out
once as an ``account_status`` record (``SET GET`` of the announced mark, so many workers send it once),
and the count is kept for ``/metrics``. Reconnecting through ``/connect`` or a new environment token
clears it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis import Redis

from config import accounts, contract, periodic
from config.settings import Settings
from workers import delivery, records
from workers.context import Context

EXPIRY_WARNING = 7 * 86400
NEEDS_RECONNECT = "needs_reconnect"
log = logging.getLogger("igrelay.accounts")


def due(ctx: Context, now: float | None = None) -> int:
    """Tick task: look at the accounts due (hourly at their phase, at once when flagged); returns records sent."""
    claimed = [a for a, _ in periodic.claim(ctx.redis, ctx.settings, periodic.STATUS, now)]
    return announce(ctx.redis, ctx.settings, now, claimed) if claimed else 0


def announce(redis: Redis, settings: Settings, now: float | None = None, found: list[str] | None = None) -> int:
    """Announce each of ``found`` (default: every account) newly needing reconnection; keep the count for
    ``/metrics``."""
    now = now or time.time()
    found = accounts.ids(redis, settings) if found is None else found
    states = _states(redis, found)
    out, flagged = [], []
    for account, (flag, source, expires) in zip(found, states, strict=True):
        mark = accounts.mark(settings, account, source)
        reason = _reason(settings, flag, mark, expires, now)
        if reason is None:
            continue
        flagged.append(account)
        if flag is None or accounts.text(flag) != mark:  # about to expire: flag it like a refusal
            accounts.flag(redis, settings, account)
        if accounts.text(redis.set(contract.announced(account), mark, get=True)) != mark:
            out.append(records.account_status(account, NEEDS_RECONNECT, reason, mark))
            log.error("account needs reconnection", extra={"account": account, "reason": reason})
    _count(redis, found, flagged)
    delivery.emit(redis, settings, out)
    return len(out)


def _count(redis: Redis, found: list[str], flagged: list[str]) -> None:
    """Keep the set of accounts needing reconnection and its size (``/metrics``) up to date for ``found``."""
    with redis.pipeline(transaction=True) as pipe:
        if clear := [a for a in found if a not in flagged]:
            pipe.srem(contract.RECONNECT_NEEDED, *clear)
        if flagged:
            pipe.sadd(contract.RECONNECT_NEEDED, *flagged)
        pipe.scard(contract.RECONNECT_NEEDED)
        count = pipe.execute()[-1]
    redis.set(contract.NEEDS_RECONNECT_COUNT, count)


def _states(redis: Redis, found: list[str]) -> list[tuple[Any, Any, Any]]:
    pipe = redis.pipeline(transaction=False)
    for account in found:
        pipe.get(contract.needs_reauth(account))
        pipe.hmget(contract.token(account), "source", "expires_at")
    answers = pipe.execute()
    return [(answers[2 * n], *answers[2 * n + 1]) for n in range(len(found))]


def _reason(settings: Settings, flag: Any, mark: str, expires: Any, now: float) -> str | None:
    """Why the account needs reconnecting, or None."""
    if flag is not None and accounts.text(flag) == mark:
        return "Meta refused the access token: reconnect the account"
    if settings.login_type == "instagram" and expires and float(expires) - now < EXPIRY_WARNING:
        when = time.strftime("%Y-%m-%d", time.gmtime(float(expires)))
        return f"the access token expires on {when} and could not be refreshed: reconnect the account"
    return None
