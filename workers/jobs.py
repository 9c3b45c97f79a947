"""RQ entry points: thin, JSON-safe arguments, nothing done at import time.

The web enqueues ``drain_inbox`` by dotted path; everything else is enqueued by workers.
"""

from __future__ import annotations

import logging
import os

from rq import get_current_job

from config import stats
from workers import context, delivery, fetch, ingest, polling, ticker

log = logging.getLogger("igrelay.jobs")


def _consumer() -> str:
    """The inbox consumer of this job: named by the job id alone, so the same job, requeued after a
    restart cut it short, takes back the entries it had read (``ingest._read_own``)."""
    job = get_current_job()
    return f"job-{job.id}" if job else f"{os.uname().nodename}-{os.getpid()}"


def drain_inbox() -> dict[str, int]:
    """Turn stored deliveries into records and fetch requests."""
    ctx = context.current()
    ticker.ensure(ctx.redis)
    result = ingest.drain(ctx.redis, ctx.settings, consumer=_consumer())
    stats.incr(ctx.redis, "igrelay_jobs_total", job="drain_inbox", outcome="ok")
    return {"deliveries": result.deliveries, "records": result.records, "fetches": result.fetches}


def deliver(sink: str, records: list[dict]) -> int:
    """Deliver ``records`` to the sink named ``sink``."""
    ctx = context.current()
    delivery.deliver(ctx.redis, ctx.settings, sink, records)
    return len(records)


def tick() -> None:
    """Every few seconds: schedule the next tick, then run what is due."""
    ctx = context.current()
    ticker.run(ctx, consumer=_consumer())


def fetch_batch(items: list[list[str]]) -> dict[str, int]:
    """Fetch insights for ``[account, media, trigger]`` items, concurrently, and emit what changed."""
    ctx = context.current()
    return fetch.fetch_batch(ctx.redis, ctx.settings, items)


def poll_account(account: str) -> int:
    """Discover ``account``'s new media and stories."""
    ctx = context.current()
    return polling.poll_account(ctx.redis, ctx.settings, account)


def account_insights(account: str) -> bool:
    """Yesterday's account insights for ``account``."""
    ctx = context.current()
    return polling.account_insights(ctx.redis, ctx.settings, account) is not None


def refresh_token(account: str) -> bool:
    """Refresh ``account``'s Instagram Login token when it is due."""
    ctx = context.current()
    return polling.refresh_token(ctx.redis, ctx.settings, account)
