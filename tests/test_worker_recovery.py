"""igrelay's worker timings, measured: a whole worker SIGKILLed mid-job (as a PaaS kills a dyno)
while it holds the scheduler lock; a replacement worker starts at once.

Figures asserted: the abandoned job runs again and finishes within 180 s of the kill (RQ's
defaults take about 13.5 min), and a job scheduled to run 5 s after the kill runs within 120 s
of its due time (the replacement takes over the scheduler).
"""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from rq import Queue, Retry

from config.rq import QUEUE, SERIALIZER
from tests.conftest import TEST_REDIS_URL
from tests.support.procs import kill_tree

ROOT = Path(__file__).resolve().parent.parent


def start_worker(tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("META_", "IGRELAY_", "IG_", "GRAPH_"))}
    env.update(
        REDIS_URL=TEST_REDIS_URL,
        IGRELAY_SINKS=f"file://{tmp_path}/records.jsonl",
        IGRELAY_POLL_INTERVAL="0",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process below
    proc = subprocess.Popen(
        [sys.executable, "-m", "igrelay", "worker", "--name", name],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return proc


def wait_for(predicate, timeout: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def test_killed_worker_job_and_scheduler_recover_in_time(redis, tmp_path):
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    first = start_worker(tmp_path, "doomed")
    second = None
    try:
        assert wait_for(lambda: redis.exists(f"rq:scheduler-lock:{QUEUE}"), 30), "no scheduler lock"
        queue.enqueue(
            "tests.support.jobs.slow", "job", 15, retry=Retry(max=2), job_timeout=60, result_ttl=60, failure_ttl=600
        )
        assert wait_for(lambda: redis.llen("job:started") == 1, 30), "job never started"
        kill_tree(first.pid)  # parent, work horse and scheduler: the whole dyno
        first.wait(10)
        killed_at = time.time()
        queue.enqueue_in(
            timedelta(seconds=5), "tests.support.jobs.mark", "scheduled", job_timeout=30, result_ttl=60, failure_ttl=600
        )
        second = start_worker(tmp_path, "replacement")

        assert wait_for(lambda: redis.llen("scheduled") == 1, 140, step=1), "scheduled job never ran"
        late = float(redis.lindex("scheduled", 0)) - (killed_at + 5)
        assert late < 120, f"scheduled job ran {late:.0f} s late"

        assert wait_for(lambda: redis.llen("job:finished") == 1, 200 - (time.time() - killed_at), step=1)
        recovered = float(redis.lindex("job:finished", 0)) - killed_at
        assert recovered < 180, f"abandoned job finished {recovered:.0f} s after the kill"
        assert redis.llen("job:started") == 2  # at least once: it ran again, from the start
        print(f"\nscheduler took over {late:.0f} s after due; abandoned job done {recovered:.0f} s after kill")
    finally:
        for proc in (first, second):
            if proc and proc.poll() is None:
                kill_tree(proc.pid)
                proc.wait(10)
