"""workers.runner: while its horse runs a long job, a real worker runs live jobs (drains, deliveries) in its
own process, ahead of their turn; other jobs still wait for a free worker, first in, first out."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from rq import Queue, Retry

from config import contract
from config.rq import LIVE_JOB_PREFIX, QUEUE, SERIALIZER, presets
from tests.support.env import process_env
from tests.support.procs import Proc, Procs, wait_until

ROOT = Path(__file__).resolve().parent.parent


def start_worker(procs: Procs, tmp_path: Path, name: str) -> Proc:
    """``igrelay worker`` that can import the jobs in tests/support/jobs.py."""
    sinks = f"file://{tmp_path}/records.jsonl"
    env = process_env(IGRELAY_SINKS=sinks, IGRELAY_POLL_INTERVAL="0", LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    proc = procs.start(name, [sys.executable, "-m", "tests.support.jobs", "--name", name], env, cwd=ROOT)
    proc.worker_name = name
    return proc


def in_flight(queue: Queue) -> list[str]:
    """Jobs still started or taken (the worker's own tick, which may run at any moment, aside)."""
    taken = [i.decode() for i in queue.connection.lrange(queue.intermediate_queue_key, 0, -1)]
    ids = [i.split(":")[0] for i in queue.started_job_registry.get_job_ids()] + taken
    return [i for i in ids if not i.startswith("tick-")]


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) the process ``pid`` itself has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def long_job(queue: Queue, redis, seconds: float) -> None:  # type: ignore[no-untyped-def]
    """A forked job of ``seconds`` (a fetch or a backfill step at Meta's latency), running once this returns."""
    queue.enqueue(
        "tests.support.jobs.slow", "long", seconds, retry=Retry(max=2, interval=60), job_timeout=60, result_ttl=60
    )
    assert wait_until(lambda: redis.llen("long:started") == 1, 30, 0.05) is not None, "long job never started"


def test_live_jobs_overtake_while_the_horse_runs_and_others_wait(procs, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """One worker, its horse in a 4 s job: a delivery queued behind an ordinary job finishes within 2 s, in
    the worker's own process; the ordinary job runs only after the long one."""
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    worker = start_worker(procs, tmp_path, "one")
    long_job(queue, redis, 4)
    ordinary = queue.enqueue("tests.support.jobs.mark", "ordinary", result_ttl=60)
    live = queue.enqueue(contract.Jobs.DELIVER, args=("no-such-sink", []), **presets()["deliver"])
    assert live.id.startswith(LIVE_JOB_PREFIX)
    assert wait_until(lambda: live.get_status() == "finished", 2, 0.02) is not None, worker.text()[-2000:]
    assert redis.llen("long:finished") == 0 and ordinary.get_status() == "queued"
    assert wait_until(lambda: ordinary.get_status() == "finished", 30, 0.05) is not None, "ordinary job never ran"
    assert float(redis.lindex("ordinary", 0)) >= float(redis.lindex("long:finished", 0))
    assert wait_until(lambda: not in_flight(queue), 5, 0.05) is not None, in_flight(queue)


def test_a_live_job_that_must_fork_waits_for_the_horse(procs, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A job with a live id that is not one of the in-process jobs goes back to the front, once (the worker
    does not spin on it): it runs next, forked."""
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    worker = start_worker(procs, tmp_path, "one")
    long_job(queue, redis, 3)
    cpu = cpu_seconds(worker.pid)
    queue.enqueue("tests.support.jobs.mark", "ordinary", result_ttl=60)
    odd = queue.enqueue("tests.support.jobs.mark", "odd", job_id=LIVE_JOB_PREFIX + "odd", result_ttl=60)
    assert wait_until(lambda: redis.llen("long:finished") == 1, 30, 0.05) is not None
    assert cpu_seconds(worker.pid) - cpu < 1  # polling every few ms while the horse ran, not spinning
    assert wait_until(lambda: redis.llen("ordinary") == 1, 30, 0.05) is not None
    assert odd.get_status() == "finished"
    ran = [float(redis.lindex(key, 0)) for key in ("long:finished", "odd", "ordinary")]
    assert ran == sorted(ran)


@pytest.mark.faults
def test_a_restart_while_serving_beside_the_horse_requeues_the_long_job(procs, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM to the whole dyno while the worker serves live jobs beside a 30 s horse: the worker stops within
    the horse's grace, and the long job is back at the front of the queue with its retries untouched."""
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    worker = start_worker(procs, tmp_path, "one")
    long_job(queue, redis, 30)
    live = queue.enqueue(contract.Jobs.DELIVER, args=("no-such-sink", []), **presets()["deliver"])
    assert wait_until(lambda: live.get_status() == "finished", 2, 0.02) is not None
    assert worker.restart_heroku_style(grace=20) < 15, worker.text()[-2000:]
    [job_id] = queue.job_ids
    job = queue.fetch_job(job_id)
    assert job is not None and job.func_name == "tests.support.jobs.slow"
    assert job.retries_left == 2 and job.meta["interruptions"] == 1
    assert wait_until(lambda: not in_flight(queue), 5, 0.05) is not None, in_flight(queue)
