"""Periodic per-account work found by due time: one sorted set per task, never a walk over the accounts.

``igrelay:due:TASK`` maps an account id to when its TASK is next due. An account enters every set when
it appears (the environment's accounts when that list changes, a connected one on connect) and leaves
them when removed. A tick claims what is due with one script call per task; the script moves each
claimed account to the next point of its phase, so any number of workers do the work once. Phases
come from the golden-ratio sequence of an entry counter, which spreads N accounts evenly over any
interval, and polls are capped per tick at 1.5 times their mean rate, so no tick gets a burst::

    claim(redis, settings, "poll", now, rate) -> ["1784...", ...]     enter / leave / sync / due_at
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from config import contract
from config.settings import Settings

POLL, INSIGHTS, TOKEN, WATCHDOG, STATUS, BACKFILL = "poll", "insights", "token", "watchdog", "status", "backfill"
EVERY_ACCOUNT = (POLL, INSIGHTS, TOKEN, WATCHDOG, STATUS)  # backfill holds only accounts with one running
TASKS = (*EVERY_ACCOUNT, BACKFILL)
GOLDEN = (5**0.5 - 1) / 2
LIMIT = 1000  # accounts one claim takes at most; the rest wait for the next tick
STATUS_EVERY = 3600
TOKEN_EVERY = 6 * 3600  # an Instagram Login token is looked at this often (refreshed once 24 h old)
BACKFILL_EVERY = 120  # a backfill without a step in flight is looked at again this often
DAY = 86400
INSIGHTS_SPREAD = 1800  # the first half hour of Meta's (Pacific) day holds every account's daily fetch
PACIFIC = ZoneInfo("America/Los_Angeles")  # Meta's days end at Pacific midnight

# KEYS: the task's due zset, the fingerprint key. ARGV: now, limit, interval, fingerprint, rate (claims
# per member per call, 0 for none). Returns 0 when the environment's accounts changed since the last sync,
# else the claimed members and their scores; each moves to its next phase point after now.
_CLAIM_LUA = """
if redis.call('GET', KEYS[2]) ~= ARGV[4] then return 0 end
local now, limit, step, rate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[5])
if rate > 0 then
  limit = math.min(limit, math.max(1, math.floor(redis.call('ZCARD', KEYS[1]) * rate)))
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #due, 2 do
  local at = tonumber(due[i + 1])
  redis.call('ZADD', KEYS[1], at + step * (math.floor((now - at) / step) + 1), due[i])
end
return due
"""


def interval(settings: Settings, task: str) -> int:
    """Seconds between two runs of ``task`` for one account."""
    return {
        POLL: settings.poll_interval or 600,
        INSIGHTS: DAY,
        TOKEN: TOKEN_EVERY,
        WATCHDOG: settings.watchdog_interval,
        STATUS: STATUS_EVERY,
        BACKFILL: BACKFILL_EVERY,
    }[task]


def phase(seq: int) -> float:
    """The account's place in any interval, in [0, 1): the golden-ratio sequence keeps any run of them even."""
    return (seq * GOLDEN) % 1.0


def due_at(settings: Settings, task: str, fraction: float, now: float) -> float:
    """The first time at or after ``now`` that is ``fraction`` of the way through the task's interval."""
    if task == INSIGHTS:  # yesterday's numbers within half an hour; later days early in Meta's day
        return now + fraction * INSIGHTS_SPREAD
    every = interval(settings, task)
    return now + (fraction * every - now) % every


def pacific_midnight(now: float, days: int = 0) -> float:
    """The start of Meta's (Pacific) day holding ``now``, ``days`` days later."""
    day = datetime.fromtimestamp(now, PACIFIC).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, tzinfo=PACIFIC).timestamp()


def next_daily(at: float, now: float) -> float:
    """The account's daily point after ``now``: early in the next Pacific day, at its own offset."""
    return pacific_midnight(now, 1) + (at - pacific_midnight(at)) % INSIGHTS_SPREAD


def enter(redis: Any, settings: Settings, accounts: list[str], now: float | None = None) -> None:
    """Put ``accounts`` into every per-account set at their phase; an account already there keeps its time."""
    if not accounts:
        return
    now = now or time.time()
    first = int(redis.incrby(contract.DUE_SEQ, len(accounts))) - len(accounts) + 1
    with redis.pipeline(transaction=False) as pipe:
        for n, account in enumerate(accounts):
            fraction = phase(first + n)
            for task in EVERY_ACCOUNT:
                pipe.zadd(contract.due(task), {account: due_at(settings, task, fraction, now)}, nx=True)
        pipe.execute()


def leave(pipe: Any, account: str) -> None:
    """Take ``account`` out of every set (``pipe`` may be a client)."""
    for task in TASKS:
        pipe.zrem(contract.due(task), account)
    pipe.srem(contract.RECONNECT_NEEDED, account)


def soon(redis: Any, task: str, account: str, at: float) -> None:
    """Make ``task`` due for ``account`` at ``at`` (``redis`` may be a pipeline)."""
    redis.zadd(contract.due(task), {account: at})


_FINGERPRINTS: dict[int, tuple[Settings, str]] = {}  # id(settings) -> (settings, its tag): a tick asks often


def fingerprint(settings: Settings) -> str:
    """A tag of the environment's accounts and their tokens: when it changes, the sets are synced."""
    known = _FINGERPRINTS.get(id(settings))
    if known is not None and known[0] is settings:
        return known[1]
    listed = ",".join(f"{a}={settings.access_tokens[a]}" for a in sorted(settings.access_tokens))
    tag = hashlib.sha256(f"{listed}|{settings.access_token or ''}".encode()).hexdigest()[:16]
    if len(_FINGERPRINTS) > 64:  # tests make many settings; a process has one
        _FINGERPRINTS.clear()
    _FINGERPRINTS[id(settings)] = (settings, tag)
    return tag


def sync(redis: Any, settings: Settings, now: float | None = None) -> None:
    """After a change of the environment's accounts: enter every account, drop the environment's former ones,
    look at every account's status now (a changed token may clear or raise a flag), and resume backfills."""
    from config import accounts  # the registry imports this module

    now = now or time.time()
    env = list(settings.access_tokens)
    gone = [a for a in (accounts.text(m) for m in redis.smembers(contract.DUE_ENV)) if a not in settings.access_tokens]
    gone = [a for a, c in zip(gone, redis.smismember(contract.ACCOUNTS, gone) if gone else [], strict=True) if not c]
    everyone = accounts.ids(redis, settings)
    enter(redis, settings, everyone, now)
    running = [accounts.text(m) for m in redis.smembers(contract.BACKFILLS)]
    with redis.pipeline(transaction=True) as pipe:
        for account in gone:
            leave(pipe, account)
        if everyone:
            pipe.zadd(contract.due(STATUS), dict.fromkeys(everyone, now))
        if running:
            pipe.zadd(contract.due(BACKFILL), dict.fromkeys(running, now), nx=True)
        pipe.delete(contract.DUE_ENV)
        if env:
            pipe.sadd(contract.DUE_ENV, *env)
        pipe.set(contract.DUE_FINGERPRINT, fingerprint(settings))
        pipe.execute()


def claim(
    redis: Any, settings: Settings, task: str, now: float | None = None, rate: float = 0.0
) -> list[tuple[str, float]]:
    """Take the accounts whose ``task`` is due, as (account, when it was due); each moves to its next point."""
    now = now or time.time()
    args = (f"{now:.3f}", LIMIT, interval(settings, task), fingerprint(settings), f"{rate:.9f}")
    keys = (contract.due(task), contract.DUE_FINGERPRINT)
    answer = redis.eval(_CLAIM_LUA, 2, *keys, *args)
    if answer == 0:  # the environment's accounts changed (or first start): sync, then claim
        sync(redis, settings, now)
        answer = redis.eval(_CLAIM_LUA, 2, *keys, *args)
    flat = answer or []
    return [(_text(m), float(s)) for m, s in zip(flat[::2], flat[1::2], strict=True)]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
