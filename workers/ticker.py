"""The heartbeat of scheduled work: a ``tick`` job every ``TICK_SECONDS``.

Each tick first schedules the next one (``enqueue_at`` with a job id per time slot and
``unique=True``, so any number of workers keep exactly one chain alive), then drains a
non-empty inbox whose kick was lost and runs the periodic tasks in ``TASKS``.
"""

from __future__ import annotations

import importlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import Queue
from rq.exceptions import DuplicateJobError

from config.rq import QUEUE, SERIALIZER, presets
from workers import ingest

TICK_SECONDS = 5
ALIVE_KEY = "igrelay:tick:alive"
TICK_JOB = "workers.jobs.tick"
# Periodic tasks, called as task(context) on every tick; each decides itself whether it is due.
TASKS: list[str] = [
    "workers.fetch:dispatch",
    "workers.polling:poll_due",
    "workers.polling:account_insights_due",
    "workers.polling:token_refresh_due",
    "workers.watchdog:due",
]

log = logging.getLogger("igrelay.ticker")


def ensure(redis: Redis, now: float | None = None) -> None:
    """Schedule the next tick unless a recent tick said it is alive."""
    if redis.exists(ALIVE_KEY):
        return
    schedule_next(redis, now)


def schedule_next(redis: Redis, now: float | None = None) -> None:
    """Schedule the tick of the next time slot (a no-op when another worker already did)."""
    slot = int((now or time.time()) // TICK_SECONDS) + 1
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    at = datetime.fromtimestamp(slot * TICK_SECONDS, UTC)
    try:
        queue.enqueue_at(at, TICK_JOB, job_id=f"tick-{slot}", unique=True, **presets()["tick"])
    except DuplicateJobError:
        pass


def run(ctx: Any, consumer: str) -> None:
    """One tick."""
    redis = ctx.redis
    schedule_next(redis)
    redis.set(ALIVE_KEY, b"1", ex=TICK_SECONDS * 6)
    if redis.xlen(ingest.INBOX_KEY):
        ingest.drain(redis, ctx.settings, consumer=consumer, max_seconds=TICK_SECONDS * 4)
    for path in TASKS:
        module_name, _, func_name = path.partition(":")
        try:
            getattr(importlib.import_module(module_name), func_name)(ctx)
        except Exception:  # one failing task must not stop the others or the chain
            log.exception("periodic task failed", extra={"task": path})
