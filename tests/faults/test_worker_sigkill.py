"""Fault 1: the worker dyno SIGKILLed (parent, work horse and scheduler at once) during a stream."""

from __future__ import annotations

import time

from rq import Queue
from rq.registry import StartedJobRegistry

from config.rq import QUEUE, SERIALIZER, presets
from tests.faults.conftest import base_env, inbox_state, orphaned_jobs, stream_with_strikes, stuck, wait_settled
from tests.support.procs import Proc
from workers.runner import build_worker

DELIVERIES = 1000
CHANGES_EACH = 2
FIRST_KILL = 100  # deliveries before the first kill
KILLS = 4  # then one replacement worker to the end of the stream
# Where the killed worker was: running a job -> RQ's abandoned-job cleanup retries it <= 105 s after the
# kill (config/rq.py); just taken from the queue -> it waits in RQ's intermediate queue until two
# maintenance passes more than 60 s apart (<= ~130 s); then its retry interval, with the scheduler lock
# of the dead worker expiring at 61 s. The consumer group hands a killed drain's entries on after 60 s.
SETTLE_BOUND = 200


def test_sigkilled_worker_loses_and_duplicates_nothing(procs, redis, tmp_path):
    """1,000 signed deliveries (2,000 changes), every process of the worker (parent, scheduler, horse) SIGKILLed
    4 times while a job runs, a new worker started after each: 0 changes lost, 0 duplicate rows in the SQLite
    sink, RQ registries and the inbox's pending list empty <= 200 s after the last kill."""
    sent, last_kill, kills = stream_with_strikes(
        procs, redis, base_env(tmp_path), Proc.kill, KILLS, DELIVERIES, CHANGES_EACH, FIRST_KILL
    )
    took, rows = wait_settled(redis, tmp_path / "records.sqlite3", sent, SETTLE_BOUND)
    since_kill = time.monotonic() - last_kill
    lost = set(sent) - set(rows)
    print(f"{kills} kills mid-job; settled {since_kill:.0f} s after the last kill")
    assert kills == KILLS
    assert not lost, f"{len(lost)} of {len(sent)} changes lost; stuck={stuck(redis)} orphans={orphaned_jobs(redis)}"
    assert not {cid: n for cid, n in rows.items() if n > 1}, "changes stored more than once"
    assert len(rows) == len(sent) >= DELIVERIES * CHANGES_EACH
    assert took is not None and since_kill <= SETTLE_BOUND, (stuck(redis), inbox_state(redis))
    assert stuck(redis) == {} and inbox_state(redis) == {"length": 0, "pending": 0}


def test_job_taken_just_before_a_kill_is_retried(settings, redis):
    """A job the worker registered as started but whose horse never ran (killed in between): 1 of 1
    retried by RQ's abandoned-job cleanup, 0 dropped (workers.runner.Worker marks it started first)."""
    worker = build_worker(settings, name="doomed")
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    queue.enqueue("workers.jobs.deliver", args=("sink", []), **presets()["deliver"])
    job, _queue = Queue.dequeue_any([queue], None, connection=redis, serializer=SERIALIZER)
    worker.prepare_execution(job)  # what the parent does before forking the horse; then the dyno dies
    registry = StartedJobRegistry(queue=queue)
    registry.cleanup(timestamp=time.time() + 3600)  # its heartbeat long expired
    assert job.id in queue.scheduled_job_registry.get_job_ids()  # retried on its schedule
    assert job.get_status() == "scheduled"


def test_job_popped_just_before_a_kill_is_retried(settings, redis):
    """A job popped by a worker that dies before registering it: kept in RQ's intermediate queue, then retried.

    With several queues RQ pops with BLPOP and such a job is lost; igrelay's worker has one queue, so RQ
    moves it with LMOVE into the intermediate queue, and maintenance fails it over (to its retries) once it
    has been stuck there over a minute.
    """
    worker = build_worker(settings, name="doomed")
    assert [q.name for q in worker.queues] == [QUEUE]
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    queue.enqueue("workers.jobs.deliver", args=("sink", []), **presets()["deliver"])
    job, _queue = Queue.dequeue_any(worker.queues, None, connection=redis, serializer=SERIALIZER)  # then killed
    assert orphaned_jobs(redis) == [], "the job is in no queue or registry: lost"
    intermediate = queue.intermediate_queue
    assert job.id in intermediate.get_job_ids()
    worker.clean_registries()  # the next worker's maintenance sees it first...
    redis.set(intermediate.get_first_seen_key(job.id), time.time() - 120)  # ...and again a few minutes later
    worker.clean_registries()
    assert job.id in queue.scheduled_job_registry.get_job_ids()  # retried on its schedule
