"""Jobs that real worker subprocesses run in tests: they record what happened in Redis.

The worker runs igrelay's own jobs only; ``python -m tests.support.jobs ARGS`` is ``igrelay worker ARGS``
that also runs these.
"""

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


if __name__ == "__main__":
    import sys

    from igrelay.cli import main
    from workers import runner

    runner.ALLOWED = runner.ALLOWED | {f"tests.support.jobs.{name}" for name in ("slow", "mark")}
    sys.exit(main(["worker", *sys.argv[1:]]))
