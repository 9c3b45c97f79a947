"""Shared fixtures: a real Redis database of the tests' own, settings, the Flask app, a worker, processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from config.settings import Settings
from igrelay.payloads import sign
from tests.support.env import OTHER_SECRET, SECRET, SECRET_KEY, TEST_REDIS_URL, VERIFY_TOKEN, stop_private_redis
from tests.support.procs import Procs
from workers import context

__all__ = ["SECRET", "OTHER_SECRET", "VERIFY_TOKEN", "TEST_REDIS_URL", "sign"]


def pytest_unconfigure() -> None:
    stop_private_redis()  # a pytest-xdist worker's own redis-server


@pytest.fixture
def redis() -> Iterator[Redis]:
    """The tests' own Redis database (``TEST_REDIS_URL``), emptied before and after the test."""
    client = Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def procs(tmp_path: Path, redis: Redis) -> Iterator[Procs]:
    """The process harness; depends on ``redis`` so every process is dead before the db is emptied."""
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.close()


def make_settings(tmp_path, **overrides) -> Settings:  # type: ignore[no-untyped-def]
    env = {
        "META_APP_SECRET": f"{SECRET},{OTHER_SECRET}",
        "META_VERIFY_TOKEN": VERIFY_TOKEN,
        "IGRELAY_SECRET_KEY": SECRET_KEY,
        "REDIS_URL": TEST_REDIS_URL,
        "IGRELAY_SINKS": f"file://{tmp_path}/records.jsonl",
        "IGRELAY_DEBOUNCE_SECONDS": "30",
        "LOG_FORMAT": "text",
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return Settings.from_env(env)


@pytest.fixture
def settings(tmp_path, redis) -> Iterator[Settings]:  # type: ignore[no-untyped-def]
    s = make_settings(tmp_path)
    context.install(context.Context(s, redis))
    yield s
    context.install(None)


@pytest.fixture
def app(settings, redis):  # type: ignore[no-untyped-def]
    from webhook import create_app

    return create_app(settings, redis=redis)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


def run_worker(settings: Settings) -> None:
    """A real RQ worker (igrelay's HerokuWorker, forking) in burst mode until the queues are empty."""
    from workers.runner import build_worker

    worker = build_worker(settings)
    worker.work(burst=True, with_scheduler=False)
    context.install(context.Context(settings, Redis.from_url(settings.redis_url)))


@pytest.fixture
def graph_sandbox() -> Iterator:  # type: ignore[type-arg]
    """A running sandbox Graph API on 127.0.0.1 with the demo accounts and media."""
    from igrelay.sandbox import Sandbox

    with Sandbox() as sb:
        yield sb


def sandbox_settings(tmp_path, sandbox, **overrides) -> Settings:  # type: ignore[no-untyped-def]
    """Settings pointed at ``sandbox`` with a token per sandbox account."""
    tokens = ",".join(f"{acc}={sandbox.token_for(acc)}" for acc in sandbox.accounts)
    return make_settings(tmp_path, GRAPH_API_URL=sandbox.url, IG_ACCESS_TOKENS=tokens, **overrides)


@pytest.fixture
def graph_settings(tmp_path, redis, graph_sandbox) -> Iterator[Settings]:  # type: ignore[no-untyped-def]
    """``sandbox_settings`` installed as the worker context."""
    s = sandbox_settings(tmp_path, graph_sandbox)
    context.install(context.Context(s, redis))
    yield s
    context.install(None)


# --- sinks: a scripted webhook receiver on loopback, and a way to run scheduled jobs now ---


class _Receiver:
    """A local HTTP server that records requests and answers from a script (default 200)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[dict] = []
        self.script: list[tuple[int, dict]] = []
        self.delay = 0.0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, headers = receiver._next(self.path, dict(self.headers.items()), body)
                if receiver.delay:
                    import time

                    time.sleep(receiver.delay)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # Poll every 0.05 s (not 0.5): close() waits for the next poll, once per test.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def _next(self, path: str, headers: dict, body: bytes) -> tuple[int, dict]:
        with self.lock:
            status, extra = self.script.pop(0) if self.script else (200, {})
            self.requests.append({"path": path, "headers": headers, "body": body, "status": status})
        return status, extra

    def ok_bodies(self) -> list[bytes]:
        return [r["body"] for r in self.requests if 200 <= r["status"] < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    yield r
    r.close()


@pytest.fixture
def release_scheduled(redis):  # type: ignore[no-untyped-def]
    """A function that enqueues the scheduled jobs (retries, enqueue_in) of ``func`` (default: sink
    deliveries; the worker's own tick is left alone) right now, as the scheduler would; returns how many."""
    from rq import Queue
    from rq.job import Job

    from config.rq import QUEUE, SERIALIZER

    def release(func: str = "workers.jobs.deliver") -> int:
        count = 0
        queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
        registry = queue.scheduled_job_registry
        for job_id in registry.get_job_ids():
            job = Job.fetch(job_id, connection=redis, serializer=SERIALIZER)
            if job.func_name == func:
                registry.remove(job)
                queue.enqueue_job(job)
                count += 1
        return count

    return release
