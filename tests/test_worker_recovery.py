"""igrelay's worker timings, measured: a whole worker SIGKILLed mid-job (as a PaaS kills a dyno)
while it holds the scheduler lock; a replacement worker starts at once.

Figures asserted: the abandoned job runs again and finishes within 180 s of the kill (RQ's
defaults take about 13.5 min), and a job scheduled to run 5 s after the kill runs within 120 s
of its due time (the replacement takes over the scheduler).
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from rq import Queue, Retry

from config.rq import QUEUE, SERIALIZER
from tests.conftest import TEST_REDIS_URL
from tests.support.env import process_env
from tests.support.procs import Proc, Procs, wait_until

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.faults  # workers killed and restarted, with timings asserted


def start_worker(procs: Procs, tmp_path: Path, name: str) -> Proc:
    """``igrelay worker`` that can import the jobs in tests/support/jobs.py."""
    sinks = f"file://{tmp_path}/records.jsonl"
    env = process_env(IGRELAY_SINKS=sinks, IGRELAY_POLL_INTERVAL="0", LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "tests.support.jobs", "--name", name]  # igrelay worker that runs those jobs too
    proc = procs.start(name, argv, env, cwd=ROOT)
    proc.worker_name = name
    return proc


def wait_for(predicate: Callable[[], object], timeout: float, step: float = 0.5) -> bool:
    """True once ``predicate`` is, False after ``timeout`` seconds."""
    return wait_until(predicate, timeout, step) is not None


def test_killed_worker_job_and_scheduler_recover_in_time(procs, redis, tmp_path):
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    first = start_worker(procs, tmp_path, "doomed")
    assert wait_for(lambda: redis.exists(f"rq:scheduler-lock:{QUEUE}"), 30), "no scheduler lock"
    queue.enqueue(
        "tests.support.jobs.slow", "job", 15, retry=Retry(max=2), job_timeout=60, result_ttl=60, failure_ttl=600
    )
    assert wait_for(lambda: redis.llen("job:started") == 1, 30), "job never started"
    first.kill()  # parent, work horse and scheduler: the whole dyno
    killed_at = time.time()
    queue.enqueue_in(
        timedelta(seconds=5), "tests.support.jobs.mark", "scheduled", job_timeout=30, result_ttl=60, failure_ttl=600
    )
    start_worker(procs, tmp_path, "replacement")

    assert wait_for(lambda: redis.llen("scheduled") == 1, 140, step=1), "scheduled job never ran"
    late = float(redis.lindex("scheduled", 0)) - (killed_at + 5)
    assert late < 120, f"scheduled job ran {late:.0f} s late"

    assert wait_for(lambda: redis.llen("job:finished") == 1, 200 - (time.time() - killed_at), step=1)
    recovered = float(redis.lindex("job:finished", 0)) - killed_at
    assert recovered < 180, f"abandoned job finished {recovered:.0f} s after the kill"
    assert redis.llen("job:started") == 2  # at least once: it ran again, from the start
    print(f"\nscheduler took over {late:.0f} s after due; abandoned job done {recovered:.0f} s after kill")


def test_job_cut_short_by_a_restart_keeps_its_retries_and_goes_first(procs, redis, tmp_path):
    """SIGTERM to every process (Heroku's restart) during a 30 s job: RQ raises ShutDownImminentException in
    the job 6 s later. igrelay's worker puts the job back at the front of the queue with its retries untouched
    and no backoff (RQ's own handling spends a retry and parks it 60 s here); the next worker runs it first."""
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    first = start_worker(procs, tmp_path, "restarting")
    job = queue.enqueue(
        "tests.support.jobs.slow", "cut", 30, retry=Retry(max=3, interval=60), job_timeout=60, result_ttl=60
    )
    assert wait_for(lambda: redis.llen("cut:started") == 1, 30), "job never started"
    queue.enqueue("tests.support.jobs.mark", "other", job_timeout=30, result_ttl=60)  # behind it
    for pid in first.tree():
        os.kill(pid, signal.SIGTERM)  # the horse ignores it; the parent sends it SIGRTMIN
    first.wait(20)

    job.refresh()
    assert job.get_status() == "queued" and job.retries_left == 3 and job.meta["interruptions"] == 1
    assert queue.job_ids == [job.id, *queue.job_ids[1:]] and len(queue.job_ids) == 2
    assert job.id not in queue.scheduled_job_registry.get_job_ids()  # no backoff: igrelay's tick is there
    assert job.id.encode() not in redis.lrange(queue.intermediate_queue_key, 0, -1)
    assert not queue.failed_job_registry.get_job_ids()

    redis.delete("cut:started")
    start_worker(procs, tmp_path, "next")
    assert wait_for(lambda: redis.llen("cut:started") == 1, 30), "requeued job never ran"
    assert redis.llen("other") == 0  # it went first


KILL_FRESH_HORSE = """
import os, signal, sys, time
from redis import Redis
from workers.runner import Worker
worker = Worker(["igrelay"], connection=Redis.from_url(sys.argv[1]))
child = os.fork()
if child == 0:  # a horse just forked: still in the worker's process group, no handlers of its own yet
    time.sleep(30)
    os._exit(0)
worker._horse_pid = child
worker.kill_horse(signal.SIGRTMIN)  # what HerokuWorker sends the horse on SIGTERM
_, status = os.waitpid(child, 0)
print("worker alive; horse ended by signal", os.WTERMSIG(status))
"""


def test_a_restart_right_after_a_fork_does_not_kill_the_worker():
    """RQ sends SIGRTMIN to the horse's process group; a horse forked a moment ago is still in the worker's, so
    the worker killed itself (SIGRTMIN's default action) and left its job for RQ's abandoned-job cleanup."""
    done = subprocess.run(
        [sys.executable, "-c", KILL_FRESH_HORSE, TEST_REDIS_URL],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,  # a group of its own: RQ's unfixed killpg would take pytest down with it
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-500:])
    assert done.stdout.strip() == f"worker alive; horse ended by signal {int(signal.SIGRTMIN)}"


def test_a_horse_killed_during_shutdown_leaves_its_job_first_in_the_queue_and_nowhere_else(redis):
    """The parent's side of a restart: the horse died of the signal before it took the job out of RQ's
    intermediate queue. The job goes back to the front of the queue, retries untouched, and leaves neither
    the intermediate queue (RQ's maintenance would "fail" it again after it ran) nor the started registry."""
    from workers.runner import Worker

    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    job = queue.enqueue("tests.support.jobs.mark", "x", retry=Retry(max=3, interval=60), result_ttl=60)
    queue.enqueue("tests.support.jobs.mark", "y", result_ttl=60)
    worker = Worker([queue], connection=redis, serializer=SERIALIZER)
    taken, _ = Queue.dequeue_any([queue], None, connection=redis, serializer=SERIALIZER)
    assert taken.id == job.id and redis.lrange(queue.intermediate_queue_key, 0, -1) == [job.id.encode()]
    execution = worker.prepare_execution(taken)

    worker._shutting_down = True  # as request_stop sets it on SIGTERM
    worker.handle_work_horse_killed(taken, 4242, signal.SIGRTMIN, None)
    worker.handle_job_failure(taken, queue=queue, exc_string="Work-horse terminated unexpectedly", execution=execution)

    job.refresh()
    assert queue.job_ids[0] == job.id and job.get_status() == "queued" and job.retries_left == 3
    assert redis.llen(queue.intermediate_queue_key) == 0 and queue.started_job_registry.count == 0
    assert job.meta["interruptions"] == 1 and not queue.scheduled_job_registry.get_job_ids()
