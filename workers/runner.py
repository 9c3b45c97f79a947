"""``igrelay worker``: an RQ ``HerokuWorker`` with the scheduler, on igrelay's queue."""

from __future__ import annotations

from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.worker import HerokuWorker

from config.logs import setup_logging
from config.rq import QUEUES, SERIALIZER, WORKER
from config.settings import Settings
from workers import context, ingest, sinks, ticker


class Worker(HerokuWorker):
    """RQ's ``HerokuWorker``, closing a window in which a killed worker loses the job it just took.

    RQ adds the job to the StartedJobRegistry in the parent, but marks it ``started`` only later, in
    the forked work horse; its abandoned-job cleanup retries only ``started`` jobs and drops the
    others' registry entries. A dyno killed between the two (a fork takes milliseconds) lost the job
    for good: a sink delivery's records or a claimed media's fetch. Marking the job started first
    makes that kill an ordinary abandoned job, retried. (tests/faults/test_worker_sigkill.py)
    """

    def prepare_execution(self, job: Job) -> Execution:
        job.set_status(JobStatus.STARTED)
        return super().prepare_execution(job)


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
    return Worker(QUEUES, name=name, connection=redis, serializer=SERIALIZER, log_job_description=False, **WORKER)


def run_worker(settings: Settings, burst: bool = False, name: str | None = None) -> bool:
    """Work until stopped (or until the queues are empty with ``burst``)."""
    setup_logging(settings)
    worker = build_worker(settings, name)
    # RQ logs four lines per job at INFO; igrelay logs one line per delivery, fetch and sink delivery itself.
    rq_level = "DEBUG" if settings.log_level == "DEBUG" else "WARNING"
    return worker.work(burst=burst, with_scheduler=True, logging_level=rq_level)
