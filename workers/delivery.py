"""The records stage: every record to every configured sink, as its own retried delivery.

``emit`` enqueues one ``workers.jobs.deliver`` job per (sink, batch of records) inside the
caller's pipeline, so records and the work that made them are committed together. A job names
its sink by ``Sink.name``, never by URL (URLs can hold passwords and Slack hook secrets).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from redis import Redis
from rq import Queue

from config import stats
from config.rq import QUEUE_SINKS, SERIALIZER, presets
from config.settings import Settings
from workers import sinks
from workers.sinks import Record

DELIVER_JOB = "workers.jobs.deliver"
BATCH = 500

log = logging.getLogger("igrelay.delivery")


def emit(redis: Redis, settings: Settings, records: Sequence[Record], pipeline: Any = None) -> int:
    """Enqueue deliveries of ``records`` to every sink that wants them; returns jobs enqueued."""
    if not records:
        return 0
    queue = Queue(QUEUE_SINKS, connection=redis, serializer=SERIALIZER)
    target = pipeline if pipeline is not None else redis
    jobs = 0
    for name, (_url, options) in sinks.configured(settings).items():
        chosen = [r for r in records if wants(options, r)]
        for start in range(0, len(chosen), BATCH):
            chunk = chosen[start : start + BATCH]
            queue.enqueue(
                DELIVER_JOB,
                args=(name, chunk),
                pipeline=pipeline,
                description=f"deliver {len(chunk)} records to {name}",
                **presets()["deliver"],
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
    url, options = table[name]
    sink = sinks.load(url, options, settings)
    try:
        sink.send(records)
    except sinks.SinkError:
        stats.incr(redis, "igrelay_sink_deliveries_total", len(records), sink=name, outcome="failed")
        raise
    finally:
        sink.close()
    stats.incr(redis, "igrelay_sink_deliveries_total", len(records), sink=name, outcome="delivered")
    log.info("delivered", extra={"sink": name, "records": len(records)})
