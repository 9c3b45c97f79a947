"""The worker runs igrelay's own jobs only: a job planted in Redis naming anything else fails unimported."""

from __future__ import annotations

import logging

from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from config.contract import JOB_PATHS
from config.rq import QUEUE, SERIALIZER
from tests.conftest import run_worker


def test_a_planted_job_is_refused_never_imported_never_run(settings, redis, tmp_path, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    mark, ran = tmp_path / "imported", tmp_path / "ran"
    monkeypatch.setenv("IGRELAY_TEST_PLANTED_MARK", str(mark))
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    planted = [
        queue.enqueue("os.system", f"touch {ran}"),
        queue.enqueue("tests.support.planted.run", str(ran), retry=None),
        # an allowed name cannot smuggle a callback in
        queue.enqueue("workers.jobs.tick", on_failure="tests.support.planted.run"),
    ]
    caplog.set_level(logging.ERROR, "igrelay.worker")
    run_worker(settings)
    assert not mark.exists() and not ran.exists()
    failed = FailedJobRegistry(QUEUE, connection=redis, serializer=SERIALIZER)
    for job in planted:
        job = Job.fetch(job.id, connection=redis, serializer=SERIALIZER)
        assert job.get_status() == JobStatus.FAILED and job.id in failed
        assert "RefusedJob" in (job.latest_result().exc_string or "")  # type: ignore[union-attr]
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == len(planted)
    assert not redis.llen(queue.intermediate_queue_key)


def test_igrelay_jobs_are_allowed() -> None:
    import importlib

    for path in JOB_PATHS:
        module, _, name = path.rpartition(".")
        assert module in ("workers.jobs", "workers.account_jobs")
        assert callable(getattr(importlib.import_module(module), name))
