"""``igrelay worker``: an RQ ``HerokuWorker`` with the scheduler, on igrelay's queue."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, ClassVar

from redis import Redis
from redis.exceptions import RedisError
from rq import worker_registration
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import NoSuchJobError, ShutDownImminentException
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.timeouts import UnixSignalDeathPenalty
from rq.utils import now
from rq.worker import HerokuWorker, WorkerStatus

from config import contract, crypto, redis_conn
from config.contract import JOB_PATHS
from config.logs import setup_logging
from config.rq import LIVE_JOB_PREFIX, QUEUES, SERIALIZER, WORKER
from config.settings import ConfigError, Settings
from workers import context, ingest, sinks, ticker
from workers.redis_values import text
from workers.rq_scheduler import Scheduler

log = logging.getLogger("igrelay.worker")
# The only functions the worker runs: igrelay's entry points (tests that need a job of their own add it).
ALLOWED: frozenset[str] = JOB_PATHS
# A job interrupted by this many restarts in a row goes the ordinary retry way after all.
MAX_INTERRUPTIONS = 10
# While its horse runs, the worker looks for live jobs this often, among the first LIVE_SCAN queued jobs.
LIVE_POLL_SECONDS = 0.005
LIVE_SCAN = 100
# KEYS: the queue, its intermediate queue. ARGV: the live job id prefix, how many queued jobs to look at,
# then ids to pass over. Moves the first live job into the intermediate queue, as RQ's own LMOVE dequeue
# does with the head.
_TAKE_LIVE_LUA = """
local skip = {}
for i = 3, #ARGV do skip[ARGV[i]] = true end
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)) do
  if string.sub(id, 1, #ARGV[1]) == ARGV[1] and not skip[id] then
    redis.call('LREM', KEYS[1], 1, id)
    redis.call('RPUSH', KEYS[2], id)
    return id
  end
end
return false
"""


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

    Live work never waits for long jobs. RQ's parent process sits idle while its horse runs a job, so
    with every worker's horse in a fetch or a backfill step (each holds a worker for seconds at Meta's
    latency), a comment's drain and delivery waited seconds in the queue. While its horse runs, the
    parent takes live jobs (ids ``config.rq.LIVE_JOB_PREFIX``) from the queue, ahead of their turn,
    into RQ's intermediate queue as RQ's own dequeue does, and runs them in its own process, with the
    guarantees above. Idle workers still take jobs first in, first out, so long jobs are not starved.
    (tests/test_runner_live.py)

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
    _in_process: Job | None = None  # the job running in this very process (no work horse)
    _beats: _Heartbeats | None = None
    _last_beat = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._main_pid = os.getpid()
        InProcessPenalty.cut_at = None

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run igrelay's own jobs only. RQ imports and calls whatever dotted path a job names (and its
        callbacks, and posts to its webhooks): anyone able to write to Redis could run any function as
        this process. A job that is not one of igrelay's entry points fails here, in the parent, before
        anything of it is imported."""
        reason = refusal(job)
        if reason is None:
            self._execute(job, queue)
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
        HerokuWorker.request_stop(self, signum, frame)

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._main_pid:
            return
        if self._in_process is not None:  # a second signal: cut the job short now, not in a few seconds
            InProcessPenalty.cut(0)
            return
        super().request_force_stop(signum, frame)

    def handle_warm_shutdown_request(self) -> None:
        """A job running in this process gets what a horse gets on SIGTERM: a few seconds to finish,
        then ``ShutDownImminentException`` in it, and back to the front of the queue; a horse running
        beside it gets RQ's SIGRTMIN. A command waiting for Redis gives up, so the stop does not wait
        for Redis too."""
        redis_conn.stop_waiting()
        if self._in_process is None or self.horse_pid:
            HerokuWorker.handle_warm_shutdown_request(self)
        if self._in_process is not None:
            log.info("warm shutdown: the running job has %s s to finish", self.imminent_shutdown_delay)
            InProcessPenalty.cut(self.imminent_shutdown_delay)

    def _execute(self, job: Job, queue: Queue) -> None:
        """An allowed job: the hot ones in this process, the others in a forked horse as RQ does."""
        if runs_in_process(job):
            self.execute_in_process(job, queue)
        else:
            super().execute_job(job, queue)

    def execute_in_process(self, job: Job, queue: Queue) -> None:
        """Run ``job`` in this process, as RQ's ``SimpleWorker`` does, with the same guarantees as a horse.

        A fork costs 25-30 ms, more than a drain or a delivery takes. What a horse gave, kept: the job is
        marked started and registered before it runs (a SIGKILL leaves an abandoned job that RQ's cleanup
        retries); heartbeats every ``job_monitoring_interval`` keep its registry entry alive however long it
        runs; its timeout is enforced with SIGALRM; a warm shutdown cuts it short after
        ``imminent_shutdown_delay`` and it goes back to the front of the queue (``handle_job_failure``).
        """
        self._in_process = job  # before anything: a SIGTERM from here on cuts this job short
        penalty = self.death_penalty_class
        self.death_penalty_class = InProcessPenalty
        try:
            execution = self.prepare_execution(job)
            with self._heartbeats(job, execution):
                self.perform_job(job, queue, execution)
        except RedisError as exc:
            # RQ's own bookkeeping failed after the job (Redis gone or full). A horse would have died of
            # it, not the worker: the job stays started in RQ's registry and its abandoned-job cleanup
            # runs it again (it is idempotent); this worker goes on to reconnect.
            log.error("job bookkeeping failed (%s); left to RQ's cleanup", type(exc).__name__, extra={"job": job.id})
        finally:
            self.death_penalty_class = penalty
            self._in_process = None
        self.set_state(WorkerStatus.BUSY if self.horse_pid else WorkerStatus.IDLE)

    def monitor_work_horse(self, job: Job, queue: Queue, execution: Execution) -> None:
        """While the horse runs, serve live jobs in this process; then RQ's monitor reaps the horse."""
        passed: list[str] = []  # live ids that must fork after all: left in the queue for a free worker
        with self._heartbeats(job, execution):
            while not self._stop_requested and self._horse_running():
                try:
                    live = self._take_live(queue, passed)
                    if live is None:
                        time.sleep(LIVE_POLL_SECONDS)
                    elif not self._run_live(live, queue):
                        passed.append(live.id)
                except RedisError:  # Redis away, or given up on for a shutdown: leave it to RQ's monitor
                    break
        super().monitor_work_horse(job, queue, execution)

    def _horse_running(self) -> bool:
        """True while the horse has not exited (it is left unreaped for RQ's monitor)."""
        try:
            return os.waitid(os.P_PID, self.horse_pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    def _take_live(self, queue: Queue, passed: list[str]) -> Job | None:
        """The first live job waiting in ``queue`` (but ``passed``), moved to its intermediate queue, or None."""
        keys = (queue.key, queue.intermediate_queue_key)
        while job_id := self.connection.eval(_TAKE_LIVE_LUA, 2, *keys, LIVE_JOB_PREFIX, LIVE_SCAN, *passed):
            try:
                job = self.job_class.fetch(text(job_id), connection=self.connection, serializer=self.serializer)
            except NoSuchJobError:  # gone already (deleted, or expired): as RQ's dequeue does, skip it
                self.connection.lrem(queue.intermediate_queue_key, 1, job_id)
                continue
            job.redis_server_version = self.get_redis_server_version()  # type: ignore[no-untyped-call]
            return job
        return None

    def _run_live(self, job: Job, queue: Queue) -> bool:
        """Run a live job beside the horse; one that cannot run in this process goes back to the front
        (False)."""
        if refusal(job) is None and not runs_in_process(job):
            with self.connection.pipeline() as pipe:
                pipe.lrem(queue.intermediate_queue_key, 1, job.id)
                pipe.lpush(queue.key, job.id)
                pipe.execute()
            return False
        self.execute_job(job, queue)
        return True

    @contextmanager
    def _heartbeats(self, job: Job, execution: Execution) -> Iterator[None]:
        """What a horse's parent does while it waits: heartbeats for the worker, the job and its execution,
        from one thread kept for the worker's life (a thread per job cost a millisecond a job)."""
        if self._beats is None:
            self._beats = _Heartbeats(self)
        with self._beats.lock:
            self._beats.running[job.id] = (job, execution, time.monotonic())
        try:
            yield
        finally:
            with self._beats.lock:  # waits for a beat in flight: none may land after the job's entry is gone
                self._beats.running.pop(job.id, None)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's heartbeat, in one round trip instead of three, and at most once a second when it is only the
        worker's routine one (RQ sends it before and after every job; the key lives ``worker_ttl`` + 60 s)."""
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        if timeout is None and self._last_beat and time.monotonic() - self._last_beat < 1:
            return
        with self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(timeout, pipe)
            pipe.execute()
        self._last_beat = time.monotonic()
        if redis_conn.outages() != self._outages_seen:  # an outage outlived the registration: write it again
            self._outages_seen = redis_conn.outages()
            with self.connection.pipeline() as pipe:
                pipe.hset(self.key, mapping=self.serialize())
                worker_registration.register(self, pipe)
                pipe.expire(self.key, timeout or self.worker_ttl + 60)
                pipe.execute()

    def set_state(self, state: str, pipeline: Any = None) -> None:
        """RQ writes ``idle`` before and after every job; write a state only when it changes."""
        if pipeline is None and state == self._state and state == WorkerStatus.IDLE:
            return
        super().set_state(state, pipeline)

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
        HerokuWorker.handle_work_horse_killed(self, job, retpid, ret_val, rusage)

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


def runs_in_process(job: Job) -> bool:
    """True for the short, idempotent jobs worth no fork (``contract.IN_PROCESS_JOBS``)."""
    try:
        return job.func_name in contract.IN_PROCESS_JOBS
    except Exception:  # noqa: BLE001 - unreadable job data: the horse reports it as RQ always did
        return False


class _Heartbeats:
    """The thread that keeps the jobs the worker's process watches (its own, its horse's while it serves
    live jobs beside it) alive in RQ's registries."""

    def __init__(self, worker: Worker) -> None:
        self.worker, self.lock = worker, threading.Lock()
        self.running: dict[str, tuple[Job, Execution, float]] = {}  # job id -> job, execution, last beat
        threading.Thread(target=self.run, name="heartbeats", daemon=True).start()

    def run(self) -> None:
        interval = self.worker.job_monitoring_interval
        while True:
            time.sleep(1)
            with self.lock:
                for job, execution, since in list(self.running.values()):
                    if time.monotonic() - since < interval:
                        continue
                    self.running[job.id] = (job, execution, time.monotonic())
                    try:
                        self.worker.maintain_heartbeats(job, execution)
                    except Exception:  # noqa: BLE001 - Redis away: the next beat tries again
                        log.warning("heartbeat failed", extra={"job": job.id}, exc_info=True)


class InProcessPenalty(UnixSignalDeathPenalty):
    """A job's timeout (SIGALRM) in the worker's own process, brought forward by a warm shutdown.

    Signals are per process, so the shutdown's deadline is class state: ``cut`` sets it and re-arms
    the running penalty, if any; a penalty set up later (the job had not started yet) honours it too.
    """

    cut_at: ClassVar[float | None] = None  # monotonic time at which a shutdown ends the running job
    running: ClassVar[InProcessPenalty | None] = None
    _ends: float | None = None

    @classmethod
    def cut(cls, delay: float) -> None:
        cls.cut_at = time.monotonic() + delay
        if cls.running is not None:
            cls.running.arm()

    def setup_death_penalty(self) -> None:
        self._ends = time.monotonic() + self._timeout if self._timeout and self._timeout > 0 else None
        InProcessPenalty.running = self
        signal.signal(signal.SIGALRM, self.handle_death_penalty)
        self.arm()

    def arm(self) -> None:
        ends = [t for t in (self._ends, self.cut_at) if t is not None]
        if ends:
            signal.setitimer(signal.ITIMER_REAL, max(min(ends) - time.monotonic(), 0.001))

    def handle_death_penalty(self, signum: int, frame: FrameType | None) -> None:
        if self.cut_at is not None and time.monotonic() >= self.cut_at - 0.01:
            raise ShutDownImminentException("shut down imminent (signal: SIGALRM)", {})
        UnixSignalDeathPenalty.handle_death_penalty(self, signum, frame)

    def cancel_death_penalty(self) -> None:
        InProcessPenalty.running = None
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)


def preload(settings: Settings) -> None:
    """Import job code and configured sink drivers once: before RQ forks a horse for a job, and before the
    first job run in this process."""
    import workers.jobs  # noqa: F401

    for name, (url, options) in sinks.configured(settings).items():
        try:  # a sink's TOML options are checked now, so a bad one stops the worker at start, naming it
            sinks.load(url, options, settings).close()
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            problem = f"an option is wrong ({exc})"
            raise ConfigError(f"IGRELAY_CONFIG: sink {name} ({sinks.redact(url)}): {problem}") from None


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
