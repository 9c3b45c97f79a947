"""Meta's budget: every account's Graph calls per clock hour, by purpose, counted where each call is made.

Meta allows an Instagram account 4,800 x its impressions calls per rolling 24 hours
(https://developers.facebook.com/docs/graph-api/overview/rate-limiting#buc-rate-limits). Each call adds
one to the account's hash of the hour (purpose -> count) and to the hour's sorted set of accounts (for
aggregates on ``/metrics``, which never names accounts); both expire after ``contract.CALLS_TTL``::

    count(pipe, account, "poll")     hour(redis, account) -> {"poll": 2, "media": 40, ...}
"""

from __future__ import annotations

import time
from typing import Any

from config import contract

PURPOSES = ("poll", "media", "insights", "watchdog", "token", "backfill", "subscribe", "other")


def current_hour(now: float | None = None) -> int:
    """The clock hour of ``now`` (epoch seconds // 3600)."""
    return int((now or time.time()) // 3600)


def count(pipe: Any, account: str, purpose: str, now: float | None = None) -> None:
    """Add one call of ``purpose`` for ``account`` (commands on ``pipe``, executed by the caller)."""
    hour = current_hour(now)
    pipe.hincrby(contract.account_calls(account, hour), purpose, 1)
    pipe.expire(contract.account_calls(account, hour), contract.CALLS_TTL)
    pipe.zincrby(contract.calls_by_account(hour), 1, account)
    pipe.expire(contract.calls_by_account(hour), contract.CALLS_TTL)


def hour(redis: Any, account: str, ago: int = 0, now: float | None = None) -> dict[str, int]:
    """The account's calls by purpose in the clock hour ``ago`` hours before the current one."""
    raw = redis.hgetall(contract.account_calls(account, current_hour(now) - ago))
    return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}


def aggregates(redis: Any, ago: int = 1, now: float | None = None) -> tuple[int, int]:
    """(accounts that made calls, most calls of one account) in the clock hour ``ago`` hours back."""
    key = contract.calls_by_account(current_hour(now) - ago)
    with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(key)
        pipe.zrevrange(key, 0, 0, withscores=True)
        called, top = pipe.execute()
    return int(called), int(top[0][1]) if top else 0
