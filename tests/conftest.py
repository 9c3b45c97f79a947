"""Shared fixtures: a real Redis database of the tests' own, settings, the Flask app, a worker."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from redis import Redis

from config.settings import Settings
from igrelay.payloads import sign
from workers import context

# Database 13 on the local Redis is the tests' own; it is emptied before and after each test.
TEST_REDIS_URL = os.environ.get("IGRELAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
SECRET = "test-app-secret-0123456789"
OTHER_SECRET = "test-instagram-app-secret-9876"
VERIFY_TOKEN = "test-verify-token"

__all__ = ["SECRET", "OTHER_SECRET", "VERIFY_TOKEN", "TEST_REDIS_URL", "sign"]


@pytest.fixture
def redis() -> Iterator[Redis]:
    client = Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def make_settings(tmp_path, **overrides) -> Settings:  # type: ignore[no-untyped-def]
    env = {
        "META_APP_SECRET": f"{SECRET},{OTHER_SECRET}",
        "META_VERIFY_TOKEN": VERIFY_TOKEN,
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
