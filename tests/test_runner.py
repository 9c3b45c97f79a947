"""workers.runner: the hot jobs run in the worker's own process, with a horse's timeout and shutdown rules."""

from __future__ import annotations

import os
import time

import pytest
from rq import Queue, Retry
from rq.exceptions import ShutDownImminentException
from rq.timeouts import JobTimeoutException

from config import contract
from config.rq import QUEUE, SERIALIZER
from workers import runner
from workers.runner import InProcessPenalty, Worker, build_worker


def test_drain_and_deliver_run_without_a_fork_and_other_jobs_fork(settings, redis, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    drain = queue.enqueue(contract.Jobs.DRAIN_INBOX, result_ttl=60)
    deliver = queue.enqueue(contract.Jobs.DELIVER, args=("no-such-sink", []), result_ttl=60)
    other = queue.enqueue("tests.support.jobs.mark", "forked", result_ttl=60)
    forks: list[str] = []
    monkeypatch.setattr(runner, "ALLOWED", runner.ALLOWED | {"tests.support.jobs.mark"})
    monkeypatch.setattr(Worker, "fork_work_horse", lambda self, job, queue: forks.append(job.func_name))
    monkeypatch.setattr(Worker, "monitor_work_horse", lambda self, job, queue, execution: None)
    build_worker(settings).work(burst=True, with_scheduler=False)
    assert forks == [other.func_name]
    assert drain.get_status() == deliver.get_status() == "finished"
    running = {m.split(":")[0] for m in queue.started_job_registry.get_job_ids()}
    assert running == {other.id}  # the mocked horse never finished; the others left the registry


def test_an_in_process_job_that_overruns_its_timeout_fails_as_in_a_horse(settings, redis) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(JobTimeoutException), InProcessPenalty(1, JobTimeoutException):
        time.sleep(3)


def test_a_warm_shutdown_cuts_the_running_job_short(settings, redis) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM during an in-process job: ShutDownImminentException in it after the grace, not the timeout."""
    Worker([QUEUE], connection=redis)
    started = time.monotonic()
    with pytest.raises(ShutDownImminentException), InProcessPenalty(60, JobTimeoutException):
        InProcessPenalty.cut(0.2)
        time.sleep(5)
    assert time.monotonic() - started < 2


def test_a_shutdown_before_the_job_starts_is_honoured_when_it_does(settings, redis) -> None:  # type: ignore[no-untyped-def]
    Worker([QUEUE], connection=redis)
    InProcessPenalty.cut(0)
    with pytest.raises(ShutDownImminentException), InProcessPenalty(60, JobTimeoutException):
        time.sleep(5)


def test_an_in_process_job_cut_short_goes_back_first_with_its_retries(settings, redis) -> None:  # type: ignore[no-untyped-def]
    """The drain job of a worker that is told to stop: requeued at the front, retries untouched."""
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    job = queue.enqueue(contract.Jobs.DRAIN_INBOX, retry=Retry(max=3, interval=60), result_ttl=60)
    worker = build_worker(settings)
    worker.bootstrap()
    InProcessPenalty.cut(0)  # as if SIGTERM had arrived just as the job was taken
    taken, _queue = Queue.dequeue_any(worker.queues, None, connection=redis, serializer=SERIALIZER)
    worker.execute_job(taken, queue)
    job.refresh()
    assert job.get_status() == "queued" and job.retries_left == 3 and job.meta["interruptions"] == 1
    assert queue.job_ids == [job.id] and queue.started_job_registry.count == 0
    assert os.getpid() == worker._main_pid


def test_a_bad_sink_option_stops_the_worker_at_start_naming_it(tmp_path, redis) -> None:  # type: ignore[no-untyped-def]
    from config.settings import ConfigError
    from tests.conftest import make_settings

    config = tmp_path / "igrelay.toml"
    config.write_text('[sinks.hook]\nurl = "https://hooks.example/in"\nconcurrency = "many"\n')
    settings = make_settings(tmp_path, IGRELAY_CONFIG=str(config))
    with pytest.raises(ConfigError, match="sink hook .*an option is wrong"):
        build_worker(settings)
