"""``igrelay worker``: an RQ ``HerokuWorker`` with the scheduler, on igrelay's queue."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import worker_registration
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import ShutDownImminentException
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.utils import now
from rq.worker import HerokuWorker

from config import crypto, redis_conn
from config.contract import JOB_PATHS
from config.logs import setup_logging
from config.rq import QUEUES, SERIALIZER, WORKER
from config.settings import Settings
from workers import context, ingest, sinks, ticker
from workers.rq_scheduler import Scheduler

log = logging.getLogger("igrelay.worker")
# The only functions the worker runs: igrelay's entry points (tests that need a job of their own add it).
ALLOWED: frozenset[str] = JOB_PATHS
# A job interrupted by this many restarts in a row goes the ordinary retry way after all.
MAX_INTERRUPTIONS = 10


class Worker(HerokuWorker):
    """RQ's ``HerokuWorker`` with fixes for dynos that restart and die (each method says its own).

    A killed worker no longer loses the job it just took. RQ adds the job to the StartedJobRegistry
    in the parent, but marks it ``started`` only later, in the forked work horse; its abandoned-job
    cleanup retries only ``started`` jobs and drops the others' registry entries. A dyno killed
    between the two (a fork takes milliseconds) lost the job for good: a sink delivery's records or
    a claimed media's fetch. Marking the job started first makes that kill an ordinary abandoned
    job, retried. (tests/faults/test_worker_sigkill.py)

    A job cut short by a restart goes back to the front of the queue as it was, instead of spending
    one of its retries. On SIGTERM RQ raises ``ShutDownImminentException`` in the running job
    (or the horse dies of the signal while being forked) and treats that as the job's failure:
    the retry count drops and the next attempt waits the next, longer interval. A few restarts in a
    row (a deploy, a dyno cycling) then parked innocent jobs for minutes; a job can't be blamed for
    the dyno's restart. (tests/faults/test_worker_restart.py)

    A Redis outage pauses the worker instead of ending it: its client (``config.redis_conn``'s
    ``worker`` purpose) retries every command until Redis answers, so neither RQ's work loop, its
    horse monitor, nor the scheduler process sees the connection error that made them quit. The
    overrides below the ``Redis outages`` line finish the job: the scheduler gets a client of its
    own, the worker re-announces itself after an outage that outlived its registration, and a
    worker stopping during an outage stops instead of waiting. (tests/faults/test_redis_outage.py)
    """

    # A client for the scheduler process, built in that process (None: RQ's own rebuild of the worker's).
    scheduler_connection: Callable[[], Redis] | None = None
    _outages_seen = 0

    _shutting_down = False
    _interrupted: str | None = None  # id of the job this process saw cut short by the shutdown

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._main_pid = os.getpid()

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run igrelay's own jobs only. RQ imports and calls whatever dotted path a job names (and its
        callbacks, and posts to its webhooks): anyone able to write to Redis could run any function as
        this process. A job that is not one of igrelay's entry points fails here, in the parent, before
        anything of it is imported."""
        reason = refusal(job)
        if reason is None:
            super().execute_job(job, queue)
            return
        log.error("job %s refused: %s", job.id, reason, extra={"job": job.id})
        job.webhooks, job.retries_left = [], 0
        job._success_callback_name = job._failure_callback_name = job._stopped_callback_name = None
        execution = self.prepare_execution(job)
        job.ended_at = now()
        self.handle_job_failure(job, queue, exc_string=f"RefusedJob: {reason}\n", execution=execution)
        self.connection.lrem(queue.intermediate_queue_key, 0, job.id)

    def prepare_execution(self, job: Job) -> Execution:
        job.set_status(JobStatus.STARTED)
        return super().prepare_execution(job)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        # A horse (or the scheduler) forked a moment ago still has the worker's handlers: a SIGTERM sent to
        # the whole dyno made it run the worker's shutdown, fail on the scheduler it does not own, and unwind
        # as if it were the worker. The horse ignores SIGTERM once RQ sets it up; ignore it before, too.
        if os.getpid() != self._main_pid:
            return
        self._shutting_down = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._main_pid:
            return
        super().request_force_stop(signum, frame)

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """RQ signals the horse's process group. A horse forked a moment ago has not left the worker's group
        yet, so on a restart the SIGRTMIN meant for it also hit this worker and its scheduler, whose default
        action for it is to die on the spot: the job was left in the started registry until RQ's abandoned-job
        cleanup, minutes later. Signal such a horse alone."""
        try:
            if self.horse_pid and os.getpgid(self.horse_pid) == os.getpgrp():
                os.kill(self.horse_pid, sig)
                return
        except ProcessLookupError:
            return
        super().kill_horse(sig)

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        """In the horse: a shutdown's exception is not the job's failure (and not worth a traceback)."""
        if isinstance(exc_info[1], ShutDownImminentException):
            self._interrupted = job.id
            return
        super().handle_exception(job, *exc_info)

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        """In the parent: a horse that died while the worker was shutting down was cut short too."""
        if self._shutting_down:
            self._interrupted = job.id
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)  # type: ignore[no-untyped-call]

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
        execution: Execution | None = None,
    ) -> None:
        interruptions = int(job.meta.get("interruptions", 0)) + 1
        if self._interrupted != job.id or interruptions > MAX_INTERRUPTIONS:
            super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
            return
        self._interrupted = None
        job.meta["interruptions"] = interruptions
        with self.connection.pipeline() as pipe:
            pipe.multi()  # explicit, as RQ's enqueue into a caller's pipeline expects
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            # A horse that died before taking the job out of RQ's intermediate queue left it there; RQ's
            # maintenance would "fail" it again a minute later, after it has run.
            pipe.lrem(queue.intermediate_queue_key, 0, job.id)
            queue.enqueue_job(job, pipeline=pipe, at_front=True)
            pipe.execute()
        log.warning(
            "job %s (%s) cut short by a worker shutdown; back at the front of the queue, retries untouched",
            job.id,
            job.func_name,
            extra={"job": job.id, "interruptions": interruptions},
        )

    # --- Redis outages ------------------------------------------------------------------------

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        """RQ's, with igrelay's ``Scheduler`` (a client built for it, a quiet stop during an outage)."""
        if self.scheduler_connection is None:
            super()._start_scheduler(burst, logging_level, date_format, log_format)
            return
        level = logging_level if logging_level is not None else self.log.level
        self.scheduler = Scheduler(
            self.queues,
            connection=self.connection,
            connect=self.scheduler_connection,
            logging_level=level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()  # type: ignore[no-untyped-call]
        if not self.scheduler.acquired_locks:
            return
        if not burst:
            self.scheduler.start()  # type: ignore[no-untyped-call]
            return
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
        finally:
            self.scheduler.release_locks()  # type: ignore[no-untyped-call]
            self.scheduler.register_death()

    def handle_warm_shutdown_request(self) -> None:
        """Stopping: a command waiting for Redis gives up, so the stop does not wait for Redis too."""
        redis_conn.stop_waiting()
        super().handle_warm_shutdown_request()  # type: ignore[no-untyped-call]

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """After an outage longer than the worker's TTL, Redis dropped its registration: write it again."""
        super().heartbeat(timeout, pipeline)
        if pipeline is None and redis_conn.outages() != self._outages_seen:
            self._outages_seen = redis_conn.outages()
            with self.connection.pipeline() as pipe:
                pipe.hset(self.key, mapping=self.serialize())
                worker_registration.register(self, pipe)
                pipe.expire(self.key, timeout or self.worker_ttl + 60)
                pipe.execute()

    def teardown(self) -> None:
        """RQ's, except that Redis still away at the end leaves the registration to expire on its own."""
        try:
            super().teardown()  # type: ignore[no-untyped-call]
        except RedisError as exc:
            log.warning("worker stopped while Redis was unreachable (%s)", type(exc).__name__)


def refusal(job: Job) -> str | None:
    """Why ``job`` must not run (it names something other than an igrelay entry point), or None."""
    try:
        name, instance = job.func_name, job._instance
    except Exception:  # noqa: BLE001 - RQ wraps a body it cannot read in its own DeserializationError
        return "its data cannot be read"
    if name not in ALLOWED or instance is not None:
        return f"{str(name)[:100]!r} is not an igrelay job"
    if job._success_callback_name or job._failure_callback_name or job._stopped_callback_name or job.webhooks:
        return "igrelay jobs have no callbacks or webhooks"
    return None


def preload(settings: Settings) -> None:
    """Import job code and configured sink drivers once, before RQ forks a horse per job."""
    import workers.jobs  # noqa: F401

    for url, _options in sinks.configured(settings).values():
        sinks.sink_class(url)


def build_worker(settings: Settings, name: str | None = None) -> Worker:
    """The worker the Procfile runs, with igrelay's timings (see ``config/rq.py``)."""
    preload(settings)
    redis = context.connect(settings)
    context.install(context.Context(settings, redis))
    ingest.ensure_group(redis)
    ticker.ensure(redis)
    worker = Worker(QUEUES, name=name, connection=redis, serializer=SERIALIZER, log_job_description=False, **WORKER)
    worker.scheduler_connection = lambda: redis_conn.connect(settings, "scheduler")
    return worker


def run_worker(settings: Settings, burst: bool = False, name: str | None = None) -> bool:
    """Work until stopped (or until the queues are empty with ``burst``)."""
    setup_logging(settings)
    if not settings.secret_keys:
        crypto.say_missing(log)
    worker = build_worker(settings, name)
    # RQ logs four lines per job at INFO; igrelay logs one line per delivery, fetch and sink delivery itself.
    rq_level = "DEBUG" if settings.log_level == "DEBUG" else "WARNING"
    return worker.work(burst=burst, with_scheduler=True, logging_level=rq_level)
