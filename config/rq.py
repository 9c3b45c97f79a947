"""RQ policy: queue names, worker timings and per-job enqueue presets, in one place.

Both processes read this module: the web enqueues ``drain_inbox`` by dotted path through
``enqueue_drain``; the worker (``workers.runner.Worker``, a ``HerokuWorker``) is built
from ``WORKER``. A sink delivery's retries span the sink's ``retry_span``: ``presets(span)``
builds that schedule here too. The timings are chosen so a job from a killed worker is
recovered in under 3 minutes (RQ's defaults take about 13.5: an abandoned job waits for its
registry entry to expire, and the scheduler lock for its 60 s TTL) and a replacement worker
takes over the scheduler in under 2:

- heartbeats every ``job_monitoring_interval`` (10 s) put an abandoned job's registry expiry at
  most 70 s after the kill;
- an idle worker wakes every ``worker_ttl - 15`` (15 s) and runs maintenance every 20 s, which
  both collects abandoned jobs and re-tries the 61 s scheduler lock.
Worst case: 70 + 20 + 15 = 105 s for a job, 61 + 20 + 15 = 96 s for the scheduler.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from typing import Any

from rq import Queue, Retry
from rq.job import Job

from config.contract import Jobs
from config.settings import parse_duration

# One queue, on purpose. A worker on one queue dequeues with LMOVE into RQ's intermediate queue,
# so a job taken by a worker that is killed a moment later is recovered; with several queues RQ
# pops with BLPOP and such a job is lost (tests/faults/test_worker_sigkill.py). First in, first
# out also keeps ingest from starving sink deliveries: no job kind can overtake another forever.
QUEUE = "igrelay"
QUEUES = [QUEUE]
# The live path's jobs (inbox drains, sink deliveries) carry ids with this prefix: a worker whose work
# horse is busy with a long job (a fetch, a backfill step) takes them out of the queue, ahead of
# their turn, and runs them in its own process (``workers.runner``), so live work never waits for
# long jobs. An idle worker still takes jobs first in, first out.
LIVE_JOB_PREFIX = "live-"

SERIALIZER = "rq.serializers.JSONSerializer"
WORKER = {
    "worker_ttl": 30,
    "job_monitoring_interval": 10,
    "maintenance_interval": 20,
}

DAY = 86400


def _retry(*intervals: int) -> Retry:
    return Retry(max=len(intervals), interval=list(intervals))


def retry_schedule(span: int, first: int = 10, factor: int = 3, cap: int = 6 * 3600, jitter: float = 0.2) -> Retry:
    """Exponential intervals with ±``jitter`` summing to about ``span`` seconds (then dead letter)."""
    intervals: list[int] = []
    total, step = 0, first
    while total < span:
        interval = min(step, cap, max(span - total, first))
        intervals.append(max(1, round(interval * random.uniform(1 - jitter, 1 + jitter))))  # noqa: S311
        total += interval
        step *= factor
    return Retry(max=len(intervals), interval=intervals)


def live_job_id() -> str:
    """A fresh id for a live-path job (see ``LIVE_JOB_PREFIX``)."""
    return LIVE_JOB_PREFIX + uuid.uuid4().hex


def presets(deliver_span: int = DAY) -> dict[str, dict[str, Any]]:
    """Enqueue keyword presets per kind of job (fresh ``Retry`` objects and live job ids each call); a
    delivery's retries span ``deliver_span`` seconds, jittered so failed deliveries do not retry in step."""
    return {
        # Draining is idempotent and cheap: retry soon, keep failures a week for `igrelay failed`.
        "ingest": {
            "retry": _retry(5, 15, 60, 300, 900),
            "job_timeout": 120,
            "result_ttl": 60,
            "failure_ttl": 7 * DAY,
            "job_id": live_job_id(),
        },
        "fetch": {
            "retry": _retry(30, 120, 600, 1800, 3600),
            "job_timeout": 300,
            "result_ttl": 300,
            "failure_ttl": 7 * DAY,
        },
        # Sink deliveries span about a day of retries (the sink's retry_span) before they are dead-lettered.
        "deliver": {
            "retry": retry_schedule(deliver_span),
            "job_timeout": 120,
            "result_ttl": 60,
            "failure_ttl": 14 * DAY,
            "job_id": live_job_id(),
        },
        "tick": {"retry": _retry(2, 5), "job_timeout": 60, "result_ttl": 120, "failure_ttl": DAY},
        "periodic": {"retry": _retry(60, 600, 1800), "job_timeout": 600, "result_ttl": 600, "failure_ttl": 7 * DAY},
    }


def enqueue_drain(queue: Queue) -> Job:
    """A ``drain_inbox`` job on ``queue``. Whether one is needed is the caller's to know (the inbox's
    pending flag, ``config.contract.INBOX_PENDING``): an extra one finds nothing and ends at once."""
    return queue.enqueue(Jobs.DRAIN_INBOX, **presets()["ingest"])


def deliver_preset(options: Mapping[str, Any]) -> dict[str, Any]:
    """Enqueue keywords for a delivery to a sink with these TOML ``options``: the ``deliver`` preset
    over the sink's ``retry_span``."""
    raw = options.get("retry_span", "1d")
    span = int(raw) if isinstance(raw, (int, float)) else parse_duration("[sinks] retry_span", str(raw))
    return presets(deliver_span=span)["deliver"]
