"""Jobs that real worker subprocesses run in tests: they record what happened in Redis."""

import os
import time

from rq import get_current_job


def slow(key: str, seconds: float) -> None:
    """Record a start, sleep, record a finish (both with the time), under ``key``."""
    job = get_current_job()
    assert job is not None
    job.connection.rpush(f"{key}:started", f"{time.time():.3f}:{os.getpid()}")
    time.sleep(seconds)
    job.connection.rpush(f"{key}:finished", f"{time.time():.3f}")


def mark(key: str) -> None:
    """Record when it ran."""
    job = get_current_job()
    assert job is not None
    job.connection.rpush(key, f"{time.time():.3f}")
