"""Counters kept in one Redis hash, written by every process, exposed by the web's ``/metrics``.

Counting in Redis (``HINCRBY`` inside the pipeline that does the work) makes the numbers right
across any number of gunicorn and RQ worker processes without prometheus multiprocess files.
A field is ``name`` or ``name|label=value|label=value``; values never hold secrets.
"""

from __future__ import annotations

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
