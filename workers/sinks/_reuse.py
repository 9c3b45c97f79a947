"""Not a sink: database connections kept open between batches of one process.

Delivery jobs load a sink per batch; when jobs run inside the worker process (not in a fork of
it), the next batch takes the previous one's connection instead of paying connect, PRAGMAs and
table checks again. Keyed by process id, so a forked child never touches its parent's
connection (a libpq socket or SQLite file lock shared across ``fork`` corrupts both sides), and
only a connection idle for less than ``MAX_IDLE`` seconds is reused, since servers and proxies
drop idle connections and a dropped one would fail a delivery.
"""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Callable
from typing import Any

MAX_IDLE = 60.0
MAX_KEPT = 4  # sinks per process are few; more keys than this means short-lived ones (tests, check)
_kept: dict[tuple[int, str], tuple[Any, Callable[[], None], float]] = {}


def take(key: str) -> Any | None:
    """The connection kept under ``key`` by this process, or ``None`` (a stale one is closed)."""
    entry = _kept.pop((os.getpid(), key), None)
    if entry is None:
        return None
    conn, close, since = entry
    if time.monotonic() - since < MAX_IDLE:
        return conn
    _quietly(close)
    return None


def keep(key: str, conn: Any, close: Callable[[], None]) -> None:
    """Keep ``conn`` for the next batch of this process (``close`` frees it); one per key."""
    old = _kept.pop((os.getpid(), key), None)
    if old is not None:
        _quietly(old[1])
    _kept[(os.getpid(), key)] = (conn, close, time.monotonic())
    while len(_kept) > MAX_KEPT:  # dicts keep insertion order: the first is the longest kept
        _quietly(_kept.pop(next(iter(_kept)))[1])


def close_all() -> None:
    """Close every connection this process keeps (at exit, and in tests)."""
    pid = os.getpid()
    for key in [k for k in _kept if k[0] == pid]:
        _quietly(_kept.pop(key)[1])


def _quietly(close: Callable[[], None]) -> None:
    try:
        close()
    except Exception:  # noqa: BLE001 - a connection that fails to close is gone anyway
        pass


atexit.register(close_all)
