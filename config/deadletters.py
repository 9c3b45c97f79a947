"""The dead letters: failed jobs on igrelay's queues, listed and replayed with RQ's own registry.

A job lands in RQ's FailedJobRegistry when its retries ran out or its sink failed for good. An inbox
entry the worker refused (an id that is not numeric, a time out of range, a body it could not read)
lands in the dead-letter stream ``contract.INBOX_DEAD``; it is listed with the id ``inbox-STREAM_ID``
and replayed by putting its body back into the inbox. Both
``igrelay failed`` (through ``workers.failed``) and the web console read and replay them here, so
neither needs the other's code. Listing never shows arguments beyond a sink name and a record
count, and error texts are cut to their last line and scrubbed. Replaying requeues a job under its
own id with a fresh retry schedule and re-enables a sink that had been disabled by a 410; records
already sent to a non-idempotent sink stay marked, so a replay never sends them twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry

from config import contract, sinkconf
from config.contract import Jobs
from config.logs import redact
from config.rq import QUEUE, QUEUES, SERIALIZER, deliver_preset, enqueue_drain, presets
from config.settings import Settings

DEAD_ENTRY = "inbox-"  # id prefix of a dead-lettered inbox entry in listings
PRESET_BY_JOB = {  # the preset each job was enqueued with; the rest use "periodic"
    Jobs.DRAIN_INBOX: "ingest",
    Jobs.FETCH_BATCH: "fetch",
    Jobs.DELIVER: "deliver",
    Jobs.TICK: "tick",
}


def failed_jobs(redis: Redis) -> Iterable[tuple[str, FailedJobRegistry, Job]]:
    """(queue, its failed registry, job) for every dead letter."""
    for queue in QUEUES:
        registry = FailedJobRegistry(queue, connection=redis, serializer=SERIALIZER)
        ids = registry.get_job_ids()
        for job in Job.fetch_many(ids, connection=redis, serializer=SERIALIZER):
            if job is not None:
                yield queue, registry, job


def count(redis: Redis) -> int:
    """How many dead letters there are (without loading them)."""
    jobs = sum(FailedJobRegistry(q, connection=redis, serializer=SERIALIZER).count for q in QUEUES)
    return jobs + int(redis.xlen(contract.INBOX_DEAD))


def sink_of(job: Job) -> str | None:
    """The sink a delivery job delivers to (None for other jobs)."""
    return str(job.args[0]) if job.func_name == Jobs.DELIVER and job.args else None


def error_of(job: Job) -> tuple[str | None, str | None]:
    """The exception class and a short, scrubbed message from the job's last failure."""
    result = job.latest_result()
    text = (result.exc_string if result is not None else None) or ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None, None
    name, sep, message = lines[-1].partition(": ")
    if not sep or " " in name.strip():  # not "module.Class: message", e.g. RQ's abandoned-job note
        return None, redact(lines[-1].strip())[:200]
    return name.rsplit(".", 1)[-1].strip(), redact(message.strip())[:200]


def describe(queue: str, job: Job) -> dict[str, Any]:
    """One dead letter as a JSON-safe dict."""
    exc_class, message = error_of(job)
    intervals = job.retry_intervals or []
    attempts = job.meta.get("attempts") or len(intervals) - (job.retries_left or 0) + 1
    records = job.meta.get("records") if sink_of(job) else None
    if records is None and sink_of(job) and len(job.args) > 1 and isinstance(job.args[1], list):
        records = len(job.args[1])  # a job that named its records and failed before it counted them
    return {
        "id": job.id,
        "queue": queue,
        "function": job.func_name,
        "sink": sink_of(job),
        "records": records,
        "attempts": attempts,
        "failed_at": job.ended_at.isoformat() if job.ended_at else None,
        "exception": exc_class,
        "message": message,
    }


def describe_entry(entry_id: str, data: dict[bytes, bytes]) -> dict[str, Any]:
    """One dead-lettered inbox entry as a JSON-safe dict, in the shape of ``describe``."""
    millis = int(entry_id.split("-", 1)[0])
    return {
        "id": DEAD_ENTRY + entry_id,
        "queue": contract.INBOX_DEAD,
        "function": "inbox entry",
        "sink": None,
        "records": None,
        "changes": int(_text(data.get(b"n", b"0")) or 0),
        "attempts": 1,
        "failed_at": datetime.fromtimestamp(millis / 1000, UTC).isoformat(),
        "exception": "RefusedDelivery",
        "message": redact(_text(data.get(b"r", b"")))[:200],
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _dead_entries(redis: Redis) -> list[tuple[str, dict[bytes, bytes]]]:
    entries: Any = redis.xrange(contract.INBOX_DEAD)
    return [(_text(eid), data) for eid, data in entries]


def list_failed(redis: Redis, sink: str | None = None) -> list[dict[str, Any]]:
    """Dead letters on every igrelay queue and in the inbox's dead-letter stream (only deliveries to
    ``sink`` when given), oldest first."""
    out = [describe(queue, job) for queue, _r, job in failed_jobs(redis) if sink is None or sink_of(job) == sink]
    if sink is None:
        out += [describe_entry(eid, data) for eid, data in _dead_entries(redis)]
    return sorted(out, key=lambda item: item["failed_at"] or "")


def replay(
    redis: Redis, sink: str | None = None, job_ids: Iterable[str] | None = None, settings: Settings | None = None
) -> int:
    """Requeue dead letters (all, one sink's, or the given ids) with fresh retries; returns how many."""
    wanted = set(job_ids) if job_ids is not None else None
    table = sinkconf.configured(settings) if settings is not None else {}
    n = 0 if sink is not None else replay_entries(redis, wanted)
    for _queue, registry, job in list(failed_jobs(redis)):
        name = sink_of(job)
        if (sink is not None and name != sink) or (wanted is not None and job.id not in wanted):
            continue
        if name is not None:
            redis.delete(contract.sink_disabled(name))
        preset = PRESET_BY_JOB.get(job.func_name or "", "periodic")
        retry = deliver_preset(table[name][1])["retry"] if name in table else presets()[preset]["retry"]
        job.retries_left, job.retry_intervals = retry.max, retry.intervals
        job.meta["attempts"] = 0
        job.save()
        registry.requeue(job)
        n += 1
    return n


def replay_entries(redis: Redis, wanted: set[str] | None) -> int:
    """Move dead-lettered inbox entries (all, or the ``wanted`` ids) back into the inbox and kick a drain.
    Their changes already acted on are duplicates by then (per-change dedupe, keyed sinks)."""
    moved = [(eid, data) for eid, data in _dead_entries(redis) if wanted is None or DEAD_ENTRY + eid in wanted]
    if not moved:
        return 0
    pipe = redis.pipeline(transaction=True)
    for eid, data in moved:
        pipe.xadd(contract.INBOX, {b"b": data.get(b"b", b""), b"t": data.get(b"t", b"")})
        pipe.xdel(contract.INBOX_DEAD, eid)
    pipe.execute()
    enqueue_drain(Queue(QUEUE, connection=redis, serializer=SERIALIZER))
    return len(moved)
