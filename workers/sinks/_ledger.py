"""Not a sink: the per-sink memory in Redis (records already sent to non-idempotent sinks, disabled sinks).

Keys (built by ``config.contract``)::

    contract.sent(sink, record id)   string, EX 15 d   sent (or claimed, for at-most-once sinks)
    contract.sink_disabled(sink)     string            epoch seconds the sink said 410 Gone

Marks outlive the failed-job retention (14 d), so replaying a dead letter never resends a record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from config import contract
from workers.sinks import Record

MARK_TTL = 15 * 86400


def unsent(redis: Any, sink: str, records: Sequence[Record]) -> list[Record]:
    """``records`` without those already marked as sent to ``sink`` (one round trip)."""
    if not records:
        return []
    marks = redis.mget([contract.sent(sink, str(r["id"])) for r in records])
    return [r for r, mark in zip(records, marks, strict=True) if mark is None]


def mark(redis: Any, sink: str, record_ids: Iterable[str]) -> None:
    """Remember ``record_ids`` as sent to ``sink``."""
    pipe = redis.pipeline(transaction=False)
    for rid in record_ids:
        pipe.set(contract.sent(sink, rid), 1, ex=MARK_TTL)
    pipe.execute()


def release(redis: Any, sink: str, record_ids: Iterable[str]) -> None:
    """Forget claims of records that were certainly not sent, so a retry sends them."""
    keys = [contract.sent(sink, rid) for rid in record_ids]
    if keys:
        redis.delete(*keys)


def claimer(redis: Any, sink: str) -> Callable[[str], bool]:
    """A function that claims a record id for ``sink`` (``False`` when it was already claimed)."""
    return lambda rid: bool(redis.set(contract.sent(sink, rid), 1, nx=True, ex=MARK_TTL))


def disable(redis: Any, sink: str, at: float) -> None:
    """Disable ``sink`` until :func:`enable`."""
    redis.set(contract.sink_disabled(sink), int(at))


def enable(redis: Any, sink: str) -> None:
    """Re-enable ``sink`` (a replay does this)."""
    redis.delete(contract.sink_disabled(sink))


def is_disabled(redis: Any, sink: str) -> bool:
    """True while ``sink`` is disabled."""
    return bool(redis.exists(contract.sink_disabled(sink)))
