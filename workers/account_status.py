"""Accounts that need a person: a refused token, or one about to expire unrefreshed, said once.

``due`` (a tick task) looks at every account of the registry: one whose token Meta refused (flagged by
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

from config import accounts, contract
from config.settings import Settings
from workers import delivery, records
from workers.context import Context

EXPIRY_WARNING = 7 * 86400
NEEDS_RECONNECT = "needs_reconnect"
log = logging.getLogger("igrelay.accounts")


def due(ctx: Context, now: float | None = None) -> int:
    """Tick task: flag what needs reconnecting, announce each new case once; returns records sent."""
    return announce(ctx.redis, ctx.settings, now)


def announce(redis: Redis, settings: Settings, now: float | None = None) -> int:
    """Announce every account newly needing reconnection; keep the count for ``/metrics``."""
    now = now or time.time()
    found = accounts.ids(redis, settings)
    states = _states(redis, found)
    out = []
    flagged = 0
    for account, (flag, source, expires) in zip(found, states, strict=True):
        mark = accounts.mark(settings, account, source)
        reason = _reason(settings, flag, mark, expires, now)
        if reason is None:
            continue
        flagged += 1
        if flag is None or accounts.text(flag) != mark:  # about to expire: flag it like a refusal
            accounts.flag(redis, settings, account)
        if accounts.text(redis.set(contract.announced(account), mark, get=True)) != mark:
            out.append(records.account_status(account, NEEDS_RECONNECT, reason, mark))
            log.error("account needs reconnection", extra={"account": account, "reason": reason})
    redis.set(contract.NEEDS_RECONNECT_COUNT, flagged)
    delivery.emit(redis, settings, out)
    return len(out)


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
