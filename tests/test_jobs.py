"""workers.jobs: every job is counted on /metrics by name and outcome, run directly or by a real worker."""

from __future__ import annotations

import pytest
from rq import Queue

from config import contract, stats
from config.rq import QUEUE, SERIALIZER
from workers import context, jobs
from workers.runner import build_worker


def counted(redis, job: str, outcome: str) -> int:  # type: ignore[no-untyped-def]
    return int(redis.hget(contract.STATS, stats.field("igrelay_jobs_total", job=job, outcome=outcome)) or 0)


def test_each_job_counts_its_outcome(settings, redis) -> None:  # type: ignore[no-untyped-def]
    assert jobs.drain_inbox()["deliveries"] == 0
    assert jobs.deliver("no-such-sink", []) == 0  # a sink no longer configured: dropped, not failed
    with pytest.raises(ValueError):
        jobs.fetch_batch([["not-an-item"]])
    assert counted(redis, "drain_inbox", "ok") == 1
    assert counted(redis, "deliver", "ok") == 1
    assert counted(redis, "fetch_batch", "failed") == 1 and counted(redis, "fetch_batch", "ok") == 0


def test_a_worker_counts_the_jobs_it_runs(settings, redis) -> None:  # type: ignore[no-untyped-def]
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    queue.enqueue(contract.Jobs.DELIVER, args=("no-such-sink", []))
    queue.enqueue(contract.Jobs.FETCH_BATCH, args=([["not-an-item"]],))
    build_worker(settings).work(burst=True, with_scheduler=False)
    context.install(context.Context(settings, redis))
    assert counted(redis, "deliver", "ok") == 1 and counted(redis, "fetch_batch", "failed") == 1
    from workers import account_jobs

    own = {f"workers.account_jobs.{name}" for name in _entry_points(account_jobs)}
    assert set(contract.JOB_PATHS) == {f"workers.jobs.{name}" for name in _entry_points()} | own


def _entry_points(module=jobs) -> list[str]:  # type: ignore[no-untyped-def]
    found = vars(module).items()
    return [
        n for n, v in found if getattr(v, "__wrapped__", None) and n != "counted" and v.__module__ == module.__name__
    ]
