"""RQ entry points: thin, JSON-safe arguments, nothing done at import time.

The web enqueues ``drain_inbox`` by dotted path; everything else is enqueued by workers.
"""

from __future__ import annotations

import logging
import os

from rq import get_current_job

from config import stats
from workers import context, delivery, ingest, ticker

log = logging.getLogger("igrelay.jobs")


def _consumer() -> str:
    job = get_current_job()
    return f"{os.uname().nodename}-{os.getpid()}-{job.id if job else 'inline'}"


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
