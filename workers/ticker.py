"""The heartbeat of scheduled work: a ``tick`` job every ``TICK_SECONDS``.

Each tick first schedules the next one (``enqueue_at`` with a job id per time slot and
``unique=True``, so any number of workers keep exactly one chain alive), then kicks a drain
of a non-empty inbox whose kick was lost and runs the periodic tasks in ``TASKS``.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from redis import Redis
from rq import Queue
from rq.exceptions import DuplicateJobError

from config import contract
from config.rq import QUEUE, SERIALIZER, presets
from workers import ingest
from workers.context import Context

TICK_SECONDS = 5
# Periodic tasks, called as task(context) on every tick; each claims what is due from a sorted set
# (``config.periodic``), so a tick with nothing due costs a few Redis calls however many accounts there are.
TASKS: list[str] = [
    "workers.fetch:dispatch",
    "workers.polling:poll_due",
    "workers.account_insights:due",
    "workers.polling:token_refresh_due",
    "workers.watchdog:due",
    "workers.account_status:due",
    "workers.backfill:due",
    "config.stats:snapshot_minute",
    "workers.delivery:resume",
]

log = logging.getLogger("igrelay.ticker")


def ensure(redis: Redis, now: float | None = None) -> None:
    """Schedule the next tick unless a recent tick said it is alive."""
    if redis.exists(contract.TICK_ALIVE):
        return
    schedule_next(redis, now)


def schedule_next(redis: Redis, now: float | None = None) -> None:
    """Schedule the tick of the next time slot (a no-op when another worker already did)."""
    slot = int((now or time.time()) // TICK_SECONDS) + 1
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    at = datetime.fromtimestamp(slot * TICK_SECONDS, UTC)
    try:
        queue.enqueue_at(at, contract.Jobs.TICK, job_id=f"tick-{slot}", unique=True, **presets()["tick"])
    except DuplicateJobError:
        pass


def run(ctx: Context) -> None:
    """One tick."""
    redis = ctx.redis
    schedule_next(redis)
    redis.set(contract.TICK_ALIVE, b"1", ex=TICK_SECONDS * 6)
    if redis.xlen(contract.INBOX):  # a kick lost, or entries a dead consumer left (claimed once idle)
        ingest.kick(redis)
    for path in TASKS:
        module_name, _, func_name = path.partition(":")
        try:
            getattr(importlib.import_module(module_name), func_name)(ctx)
        except Exception:  # one failing task must not stop the others or the chain
            log.exception("periodic task failed", extra={"task": path})


def enqueue_each(
    ctx: Context, task: str, accounts: Iterable[str], job: str, preset: str, args: tuple[str, ...] = ()
) -> int:
    """For a periodic task: enqueue ``job(account, *args)`` for each of ``accounts`` (claimed from the task's due
    set, so once however many workers tick); returns how many were enqueued."""
    queue = Queue(QUEUE, connection=ctx.redis, serializer=SERIALIZER)
    n = 0
    for account in accounts:
        queue.enqueue(job, args=(account, *args), description=f"{task} {account}", **presets()[preset])
        n += 1
    return n
