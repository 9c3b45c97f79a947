"""The worker process's settings and Redis connection, built on first use, never at import.

``igrelay worker`` installs one before forking work horses so they inherit it; tests install
their own. Jobs call ``current()``.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from config import redis_conn
from config.settings import Settings


@dataclass(frozen=True)
class Context:
    """What a job needs from its process."""

    settings: Settings
    redis: Redis


_current: Context | None = None


def connect(settings: Settings) -> Redis:
    """A Redis client for worker-side work: it waits out a Redis outage (``config.redis_conn``)."""
    return redis_conn.connect(settings, "worker")


def install(context: Context | None) -> None:
    """Make ``context`` the one jobs in this process use (``None`` to forget it)."""
    global _current
    _current = context


def current() -> Context:
    """The installed context, or one built from the environment."""
    global _current
    if _current is None:
        settings = Settings.from_env()
        _current = Context(settings, connect(settings))
    return _current
