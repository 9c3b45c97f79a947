"""RQ entry points: thin, JSON-safe arguments, nothing done at import time.

Each one's dotted path is in ``config.contract.Jobs``. The web enqueues ``drain_inbox``;
everything else is enqueued by workers. Every run is counted in ``igrelay_jobs_total`` by job
name and outcome (``ok`` or ``failed``).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from redis import Redis
from redis.exceptions import RedisError
from rq import get_current_job

from config import contract, stats
from workers import account_insights as account_days
from workers import context, delivery, fetch, ingest, polling, ticker
from workers import watchdog as subscription_watchdog
from workers.redis_values import text
from workers.sinks import Record

log = logging.getLogger("igrelay.jobs")
# One drain job reads the inbox for this long at most, then hands on to a new drain job at the back of
# the queue: the sink deliveries it emitted wait behind it in the queue, so under a steady stream this is
# about how long a comment waits for its delivery.
DRAIN_SLICE = 0.05
# Under a steady stream a drain waits this long between reads (``ingest.drain``), so each read takes a few
# milliseconds' deliveries and the drain runs its slice instead of ending at the first empty read and
# being kicked again a moment later. With the sink kicks coalesced too (``delivery.emit``), the worker's
# CPU per delivery on 2 cores at about 1,000 deliveries/s fell from 0.75 to 0.35 ms.
DRAIN_LINGER = 0.003
P = ParamSpec("P")
R = TypeVar("R")


def counted(func: Callable[P, R]) -> Callable[P, R]:
    """Count each run of the job ``func`` by name and outcome; a failure is re-raised for RQ."""

    @functools.wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result = func(*args, **kwargs)
        except BaseException:
            _count(func.__name__, "failed")
            raise
        _count(func.__name__, "ok")
        return result

    return run


def _count(job: str, outcome: str) -> None:
    try:
        stats.incr(context.current().redis, "igrelay_jobs_total", job=job, outcome=outcome)
    except (RedisError, ValueError) as exc:  # a count never changes a job's outcome (ConfigError is a ValueError)
        log.warning("job not counted (%s)", type(exc).__name__, extra={"job": job, "outcome": outcome})


def _consumer() -> str:
    """The inbox consumer of this job: named by the job id alone, so the same job, requeued after a
    restart cut it short, takes back the entries it had read (``ingest._read_own``)."""
    job = get_current_job()
    return f"job-{job.id}" if job else f"{os.uname().nodename}-{os.getpid()}"


@counted
def drain_inbox() -> dict[str, int]:
    """Turn stored deliveries into records and fetch requests."""
    ctx = context.current()
    ticker.ensure(ctx.redis)
    result = ingest.drain(ctx.redis, ctx.settings, _consumer(), max_seconds=DRAIN_SLICE, linger=DRAIN_LINGER)
    _hand_on(ctx.redis)
    return {"deliveries": result.deliveries, "records": result.records, "fetches": result.fetches}


def _hand_on(redis: Redis) -> None:
    """End a drain: clear the pending flag, then make sure a drain job follows if entries no consumer has
    read yet are left, as the web does. The web kicks no drain while the flag stands, so deliveries that
    come during a drain are this drain's to read (one job for a stream of them, not one each); clearing
    the flag before looking means each entry is either seen here or kicked by the request that stored
    it. Entries another consumer holds are not this job's to chase: they are claimed once idle
    (``ingest.CLAIM_IDLE_MS``) by a drain (the tick kicks one while the inbox is not empty)."""
    pipe = redis.pipeline(transaction=False)
    pipe.delete(contract.INBOX_PENDING)
    pipe.xinfo_stream(contract.INBOX)
    pipe.xinfo_groups(contract.INBOX)
    _, stream, groups = pipe.execute()
    delivered = next((g["last-delivered-id"] for g in groups if text(g["name"]) == contract.INBOX_GROUP), "0-0")
    if _entry_id(stream["last-generated-id"]) <= _entry_id(delivered):
        return
    ingest.kick(redis)


def _entry_id(value: bytes | str) -> tuple[int, int]:
    ms, _, seq = text(value).partition("-")
    return int(ms), int(seq or 0)


@counted
def deliver(sink: str, records: list[Record] | None = None) -> int:
    """Deliver what waits in the outbox of the sink named ``sink`` (or ``records``, when given)."""
    ctx = context.current()
    return delivery.deliver(ctx.redis, ctx.settings, sink, records)


@counted
def tick() -> None:
    """Every few seconds: schedule the next tick, then run what is due."""
    ctx = context.current()
    ticker.run(ctx)


@counted
def fetch_batch(items: list[list[str]]) -> dict[str, int]:
    """Fetch insights for ``[account, media, trigger]`` items, concurrently, and emit what changed."""
    ctx = context.current()
    return fetch.fetch_batch(ctx.redis, ctx.settings, items)


@counted
def poll_account(account: str) -> int:
    """Discover ``account``'s new media and stories."""
    ctx = context.current()
    return polling.poll_account(ctx.redis, ctx.settings, account)


@counted
def account_insights(account: str, day: str | None = None) -> int:
    """``account``'s insights of Meta's day ``day`` (default: the day just over); returns records emitted."""
    ctx = context.current()
    return len(account_days.fetch_day(ctx.redis, ctx.settings, account, day))


@counted
def refresh_token(account: str) -> bool:
    """Refresh ``account``'s Instagram Login token when it is due."""
    ctx = context.current()
    return polling.refresh_token(ctx.redis, ctx.settings, account)


@counted
def watchdog(account: str) -> list[str]:
    """Check ``account``'s webhook subscription; returns its problem codes."""
    ctx = context.current()
    return sorted(subscription_watchdog.watch(ctx.redis, ctx.settings, account))
