"""Counters kept in one Redis hash, written by every process, exposed by the web's ``/metrics``.

Counting in Redis (``HINCRBY`` inside the pipeline that does the work) makes the numbers right
across any number of gunicorn and RQ worker processes without prometheus multiprocess files.
A field is ``name`` or ``name|label=value|label=value``; values never hold secrets.
"""

from __future__ import annotations

import time
from typing import Any

from config import contract


def field(name: str, **labels: str) -> str:
    """The hash field for ``name`` with ``labels`` (sorted, ``|``-separated)."""
    if not labels:
        return name
    parts = (f"{k}={str(v).replace('|', '_')}" for k, v in sorted(labels.items()))
    return name + "|" + "|".join(parts)


def parse_field(raw: str) -> tuple[str, dict[str, str]]:
    """Inverse of :func:`field`."""
    name, *parts = raw.split("|")
    return name, dict(p.split("=", 1) for p in parts if "=" in p)


def incr(redis: Any, name: str, amount: int = 1, **labels: str) -> None:
    """``HINCRBY`` on ``redis`` (a client or a pipeline)."""
    redis.hincrby(contract.STATS, field(name, **labels), amount)


DELIVERIES = field("igrelay_deliveries_total", outcome="accepted")
RECORDS = "igrelay_records_total"
MINUTES_KEPT = 120


def totals(redis: Any) -> tuple[int, int]:
    """(deliveries accepted, records emitted) since the counters began."""
    raw = redis.hgetall(contract.STATS)
    values = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
    records = sum(v for k, v in values.items() if parse_field(k)[0] == RECORDS)
    return values.get(DELIVERIES, 0), records


def snapshot_minute(ctx: Any) -> int:
    """A periodic task (``ctx.redis``): keep this minute's totals, so rates per minute cost the hot path nothing."""
    redis, minute = ctx.redis, int(time.time() // 60)
    deliveries, records = totals(redis)
    if not redis.hsetnx(contract.STATS_MINUTES, minute, f"{deliveries} {records}"):
        return 0
    old = [k for k in redis.hkeys(contract.STATS_MINUTES) if int(k) < minute - MINUTES_KEPT]
    if old:
        redis.hdel(contract.STATS_MINUTES, *old)
    return 1


def per_minute(redis: Any, minutes: int = 60, now: float | None = None) -> list[tuple[int, int | None, int | None]]:
    """(minute, deliveries, records) for each of the last ``minutes`` whole minutes; None where a
    snapshot is missing (no worker ran then)."""
    last = int((now or time.time()) // 60)
    wanted = list(range(last - minutes, last + 1))
    raw = redis.hmget(contract.STATS_MINUTES, wanted)
    snaps: list[tuple[int, ...] | None] = [tuple(int(x) for x in v.split()) if v else None for v in raw]
    snaps[-1] = snaps[-1] or totals(redis)  # this minute's snapshot may not be taken yet
    out: list[tuple[int, int | None, int | None]] = []
    for minute, before, after in zip(wanted, snaps, snaps[1:], strict=False):
        if before is None or after is None:
            out.append((minute, None, None))
        else:
            out.append((minute, max(after[0] - before[0], 0), max(after[1] - before[1], 0)))
    return out
