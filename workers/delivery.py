"""The records stage: every record to every configured sink, as its own retried delivery.

``emit`` enqueues one ``workers.jobs.deliver`` job per (sink, batch of records) inside the
caller's pipeline, so records and the work that made them are committed together. A job names
its sink by its name (``config.sinkconf``), never by URL (URLs can hold passwords and Slack hook secrets).

``deliver`` maps the sink exceptions to retry policy, in this one place:

- success: non-idempotent sinks get per-record marks (``workers.sinks._ledger``) so no retry,
  replay or duplicate job sends a record twice; at-most-once sinks (Slack) claim before sending;
- ``SinkError``: records that got through are marked; the job is retried on its schedule
  (exponential with jitter over ``retry_span``, default 1 day), or, when the sink said
  ``Retry-After``, the rest is re-enqueued with ``enqueue_in`` (never ``time.sleep``);
- ``PermanentSinkError`` or no retries left: dead-lettered in RQ's FailedJobRegistry
  (``workers.failed``), counted as ``outcome="dead_letter"``; ``SinkGone`` also disables the sink.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from redis import Redis
from rq import Queue, Retry, get_current_job
from rq.job import Job

from config import contract, stats
from config.rq import QUEUE, SERIALIZER, deliver_preset, presets
from config.settings import ConfigError, Settings
from workers import sinks
from workers.sinks import PermanentSinkError, Record, Sink, SinkError, SinkGone
from workers.sinks import _ledger as ledger

BATCH = 500
STAT = "igrelay_sink_deliveries_total"

log = logging.getLogger("igrelay.delivery")


def job_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Enqueue keywords for a delivery to a sink with these TOML ``options``."""
    return deliver_preset(options)


def emit(redis: Redis, settings: Settings, records: Sequence[Record], pipeline: Any = None) -> int:
    """Enqueue deliveries of ``records`` to every sink that wants them; returns jobs enqueued."""
    if not records:
        return 0
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    target = pipeline if pipeline is not None else redis
    jobs = 0
    for name, (_url, options) in sinks.configured(settings).items():
        chosen = [r for r in records if wants(options, r)]
        for start in range(0, len(chosen), BATCH):
            chunk = chosen[start : start + BATCH]
            queue.enqueue(
                contract.Jobs.DELIVER,
                args=(name, chunk),
                pipeline=pipeline,
                description=f"deliver {len(chunk)} records to {name}",
                meta={"sink": name, "attempts": 0},
                **job_options(options),
            )
            jobs += 1
    for kind, n in Counter(r["kind"] for r in records).items():
        stats.incr(target, "igrelay_records_total", n, kind=kind)
    return jobs


def wants(options: Mapping[str, Any], record: Record) -> bool:
    """True when the sink's filters (TOML ``kinds``, ``accounts``, ``media_product_types``,
    ``fields``) let ``record`` through; an absent filter lets everything through."""
    checks = (
        ("kinds", record.get("kind")),
        ("accounts", record.get("account_id")),
        ("media_product_types", record.get("media_product_type")),
        ("fields", (record.get("event") or {}).get("field")),
    )
    for option, value in checks:
        allowed = options.get(option)
        if allowed and value is not None and value not in allowed:
            return False
        if allowed and value is None and option in ("kinds", "accounts"):
            return False
    return True


def deliver(redis: Redis, settings: Settings, name: str, records: Sequence[Record]) -> None:
    """Send ``records`` to the sink called ``name``; raise so RQ retries on failure."""
    table = sinks.configured(settings)
    if name not in table:
        log.warning("sink no longer configured; delivery dropped", extra={"sink": name, "records": len(records)})
        return
    job = get_current_job()
    _count_attempt(job)
    if ledger.is_disabled(redis, name):
        _dead_letter(redis, job, name, len(records))
        raise PermanentSinkError(f"sink {name} is disabled (it answered 410 Gone); replay it to re-enable")
    sink = _load(name, *table[name], settings)
    try:
        _send(redis, job, name, sink, records)
    finally:
        sink.close()


def _load(name: str, url: str, options: Mapping[str, Any], settings: Settings) -> Sink:
    try:
        return sinks.load(url, options, settings)
    except (ConfigError, ValueError) as exc:  # the text may quote the URL: keep only the type
        raise PermanentSinkError(f"sink {name}: invalid configuration ({type(exc).__name__})") from None


def _send(redis: Redis, job: Job | None, name: str, sink: Sink, records: Sequence[Record]) -> None:
    keyed = sink.idempotent
    pending = list(records) if keyed else ledger.unsent(redis, name, records)
    if len(pending) < len(records):
        stats.incr(redis, STAT, len(records) - len(pending), sink=name, outcome="already_sent")
    if not pending:
        return
    if sink.at_most_once:
        sink.claim = ledger.claimer(redis, name)
    try:
        sink.send(pending)
    except SinkError as exc:
        _failed(redis, job, name, sink, pending, exc)
        return
    except Exception as exc:  # a bug or an unwrapped driver error: its text may hold a URL
        log.exception("sink raised an unexpected error", extra={"sink": name})
        raise SinkError(f"sink {name}: unexpected {type(exc).__name__}") from None
    if not keyed and not sink.at_most_once:
        ledger.mark(redis, name, [str(r["id"]) for r in pending])
    stats.incr(redis, STAT, len(pending), sink=name, outcome="delivered")
    log.info("delivered", extra={"sink": name, "records": len(pending)})


def _failed(redis: Redis, job: Job | None, name: str, sink: Sink, pending: list[Record], exc: SinkError) -> None:
    """Settle a failed send: mark what got through, then retry, reschedule or dead-letter the rest."""
    done = set(exc.done)
    rest = [r for r in pending if str(r["id"]) not in done]
    if sink.at_most_once:
        ledger.release(redis, name, [str(r["id"]) for r in rest])
    elif not sink.idempotent and done:
        ledger.mark(redis, name, done)
    if done:
        stats.incr(redis, STAT, len(done), sink=name, outcome="delivered")
    stats.incr(redis, STAT, len(rest), sink=name, outcome="failed")
    log.warning("delivery failed", extra={"sink": name, "records": len(rest), "error": str(exc)})
    if isinstance(exc, SinkGone):
        ledger.disable(redis, name, time.time())
    left = (job.retries_left or 0) if job is not None else 0
    if exc.retry_after and job is not None and not isinstance(exc, PermanentSinkError):
        left = left - (0 if done else 1)  # progress does not use up an attempt
        if left >= 0:
            _reschedule(redis, job, name, rest, exc.retry_after, left)
            return
    if isinstance(exc, PermanentSinkError) or left <= 0:
        _dead_letter(redis, job, name, len(rest))
    raise exc


def _reschedule(redis: Redis, job: Job, name: str, records: list[Record], delay: float, left: int) -> None:
    """Enqueue ``records`` again in ``delay`` seconds with ``left`` retries of the same schedule."""
    intervals = (job.retry_intervals or [])[-left:] if left else []
    # The rest of the job's own schedule, not a fresh one: Retry-After is no reason for more attempts.
    options = {**presets()["deliver"], "retry": Retry(max=left, interval=intervals) if left else None}
    queue = Queue(job.origin, connection=redis, serializer=SERIALIZER)
    queue.enqueue_in(
        timedelta(seconds=delay),
        contract.Jobs.DELIVER,
        args=(name, records),
        description=f"deliver {len(records)} records to {name}",
        meta={"sink": name, "attempts": job.meta.get("attempts", 1)},
        **options,
    )
    stats.incr(redis, STAT, len(records), sink=name, outcome="rescheduled")
    log.info("rescheduled after Retry-After", extra={"sink": name, "records": len(records), "delay": delay})


def _dead_letter(redis: Redis, job: Job | None, name: str, count: int) -> None:
    """Make the failure final: RQ will not retry and keeps the job in its FailedJobRegistry."""
    if job is not None:
        job.retries_left = 0  # the very Job object RQ's worker consults after we raise
        stats.incr(redis, STAT, count, sink=name, outcome="dead_letter")


def _count_attempt(job: Job | None) -> None:
    if job is not None:
        job.meta["attempts"] = int(job.meta.get("attempts", 0)) + 1
        job.save_meta()
