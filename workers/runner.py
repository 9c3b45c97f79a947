"""``igrelay worker``: an RQ ``HerokuWorker`` with the scheduler, on every igrelay queue."""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from rq.worker import HerokuWorker

from config.logs import setup_logging
from config.rq import QUEUES, SERIALIZER, WORKER
from config.settings import Settings
from workers import context, ingest, sinks, ticker


def preload(settings: Settings) -> None:
    """Import job code and configured sink drivers once, before RQ forks a horse per job."""
    import workers.jobs  # noqa: F401

    for url, _options in sinks.configured(settings).values():
        path = sinks.REGISTRY.get(urlsplit(url).scheme.lower())
        if path:
            importlib.import_module(path.partition(":")[0])


def build_worker(settings: Settings, name: str | None = None) -> HerokuWorker:
    """The worker the Procfile runs, with igrelay's timings (see ``config/rq.py``)."""
    preload(settings)
    redis = context.connect(settings)
    context.install(context.Context(settings, redis))
    ingest.ensure_group(redis)
    ticker.ensure(redis)
    return HerokuWorker(QUEUES, name=name, connection=redis, serializer=SERIALIZER, log_job_description=False, **WORKER)


def run_worker(settings: Settings, burst: bool = False, name: str | None = None) -> bool:
    """Work until stopped (or until the queues are empty with ``burst``)."""
    setup_logging(settings)
    worker = build_worker(settings, name)
    return worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)
