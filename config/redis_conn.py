"""The one place Redis clients are built, per purpose, from ``REDIS_URL``.

``REDIS_URL`` is ``redis://``, ``rediss://``, ``unix://`` or
``redis+sentinel://[[user]:password@]host:port[,host:port...]/MASTER[/DB]``: with Sentinel, every
client asks the sentinels for the primary with redis-py's ``Sentinel`` and follows a failover
(a connection to a dead or demoted primary fails, and the next one asks the sentinels again).

Purposes:

- ``web``: short timeouts and no retries, so a Redis that is down gives a 503 within about a second;
- ``worker`` and ``scheduler``: a command that meets a connection error or a timeout is retried, with
  capped, jittered backoff, for as long as Redis stays away (``Patient``): a Redis outage of any
  length pauses the worker instead of killing it. Each process logs once when Redis goes away and
  once when it is back. A process that is stopping (``stop_waiting()``) no longer waits;
- ``cli``: a few seconds' timeouts, redis-py's default retries.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from redis import Redis
from redis.backoff import AbstractBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger("igrelay.redis")
T = TypeVar("T")

SENTINEL_SCHEME = "redis+sentinel"
WEB_TIMEOUT = 1.0  # a dead Redis must give a 503 well within 2 s
SENTINEL_TIMEOUT = 0.5  # per sentinel asked; the dead ones are skipped
BACKOFF_BASE, BACKOFF_CAP = 0.05, 2.0  # seconds: a worker is back at most ~2 s after Redis is
# Errors that mean "Redis is away", not "this command is wrong": a primary demoted by a failover
# answers READONLY until the client reconnects to the new one.
OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, socket.timeout)


@dataclass(frozen=True)
class SentinelURL:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_sentinel_url(raw: str) -> SentinelURL:
    """``redis+sentinel://[[user]:password@]host:port[,host:port...]/MASTER[/DB]``; ``ValueError`` names
    what is wrong."""
    parts = urlsplit(raw)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"expected {SENTINEL_SCHEME}://")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    sentinels = tuple(_host_port(h) for h in hosts.split(",") if h.strip())
    path = [p for p in parts.path.split("/") if p]
    if not sentinels:
        raise ValueError("no sentinel host:port")
    if not path or len(path) > 2:
        raise ValueError("the path must be /MASTER or /MASTER/DB")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"database {path[1]!r} is not a number")
    db = int(path[1]) if len(path) == 2 else 0
    return SentinelURL(sentinels, unquote(path[0]), db, unquote(user) or None, unquote(password) or None)


def _host_port(raw: str) -> tuple[str, int]:
    host, _, port = raw.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{raw.strip()!r} is not host:port")
    return host.strip("[]"), int(port)


def is_sentinel(url: str) -> bool:
    return url.startswith(SENTINEL_SCHEME + "://")


def connect(settings: Settings, purpose: str, timeout: float = 3.0) -> Redis:
    """A client of ``settings.redis_url`` for ``purpose``: ``web``, ``worker``, ``scheduler`` or ``cli``
    (``timeout`` applies to ``cli``)."""
    options: dict[str, Any]
    if purpose == "web":
        options = {"socket_timeout": WEB_TIMEOUT, "socket_connect_timeout": WEB_TIMEOUT}
        options["retry"] = Retry(NoBackoff(), 0)
    elif purpose in ("worker", "scheduler"):
        # RQ sets the socket timeout of the worker's connection itself (longer than its blocking dequeue).
        options = {"socket_connect_timeout": 5, "health_check_interval": 30, "retry": Patient(purpose)}
    elif purpose == "cli":
        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    else:
        raise ValueError(f"unknown Redis client purpose {purpose!r}")
    if is_sentinel(settings.redis_url):
        return _sentinel_client(parse_sentinel_url(settings.redis_url), options)
    return Redis.from_url(settings.redis_url, **options, **settings.redis_options())


def _sentinel_client(url: SentinelURL, options: dict[str, Any]) -> Redis:
    """The primary of ``url.master`` as the sentinels name it now and after a failover."""
    asked = {"socket_timeout": SENTINEL_TIMEOUT, "socket_connect_timeout": SENTINEL_TIMEOUT}
    # One try per sentinel: discovery already moves on to the next one, and the client's own retry
    # (Patient for the worker) asks them all again.
    sentinel = Sentinel(list(url.sentinels), sentinel_kwargs={**asked, "retry": Retry(NoBackoff(), 0)})
    auth = {"db": url.db, "username": url.username, "password": url.password}
    client: Redis = sentinel.master_for(url.master, connection_class=PrimaryConnection, **auth, **options)
    return client


class PrimaryConnection(SentinelManagedConnection):
    """A connection to the primary that asks the sentinels where it is on every reconnect.

    redis-py's ``SentinelManagedConnection`` asks them only in ``connect()``; sending a command on a
    dropped connection reconnects through ``connect_check_health()`` to the address it last knew, so a
    command retried after a failover kept knocking at the dead primary."""

    _resolving = False  # inside connect(), which asked the sentinels already

    def connect(self) -> None:
        self._resolving = True
        try:
            super().connect()  # type: ignore[no-untyped-call]
        finally:
            self._resolving = False

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if self._sock or self._resolving or not self.connection_pool.is_master:
            super().connect_check_health(check_health, retry_socket_connect)
            return
        self.connect()


def replicas_to_wait_for(settings: Settings) -> int:
    """How many replicas must hold a delivery before the web answers 200: one behind Sentinel (a write
    acknowledged by a primary that dies before replicating it is lost in the failover), else none."""
    return 1 if is_sentinel(settings.redis_url) else 0


# --- riding out an outage ----------------------------------------------------------------------


class _Outage:
    """This process's view of Redis being away: logged once when it starts and once when it ends."""

    def __init__(self) -> None:
        self.since: float | None = None  # monotonic time of the first failure, once logged
        self.count = 0  # outages seen by this process (the worker re-announces itself after one)
        self.stopping = False
        self._lock = threading.Lock()

    def failed(self, purpose: str, error: Exception, failures: int) -> None:
        if self.stopping:
            raise error
        if failures < 2 or self.since is not None:  # one failure is a dropped connection, retried at once
            return
        with self._lock:
            if self.since is None:
                self.since = time.monotonic()
                self.count += 1
                log.warning(
                    "Redis unreachable (%s); the %s waits for it, retrying every %.0f s at most",
                    type(error).__name__,
                    purpose,
                    BACKOFF_CAP,
                    extra={"redis_outage": "start", "pid": os.getpid()},
                )

    def ok(self, purpose: str) -> None:
        if self.since is None:
            return
        with self._lock:
            if self.since is not None:
                took, self.since = time.monotonic() - self.since, None
                log.warning(
                    "Redis is back after %.1f s; the %s resumes",
                    took,
                    purpose,
                    extra={"redis_outage": "end", "seconds": round(took, 1), "pid": os.getpid()},
                )


OUTAGE = _Outage()


def stop_waiting() -> None:
    """This process is stopping: Redis errors are raised from now on instead of waited out."""
    OUTAGE.stopping = True


def outages() -> int:
    """How many Redis outages this process has ridden out (or is riding out)."""
    return OUTAGE.count


class CappedJitter(AbstractBackoff):
    """Exponential backoff capped at ``cap``, with equal jitter (half fixed, half random)."""

    def __init__(self, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> None:
        self.base, self.cap = base, cap

    def compute(self, failures: int) -> float:
        step = min(self.cap, self.base * 2 ** min(failures, 32))  # bounded: no float overflow in a long outage
        return float(step / 2 + random.uniform(0, step / 2))  # noqa: S311 - jitter, not a secret

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CappedJitter) and (self.base, self.cap) == (other.base, other.cap)

    def __hash__(self) -> int:
        return hash((self.base, self.cap))


class Patient(Retry):
    """Retries a command on ``OUTAGE_ERRORS`` until Redis answers (redis-py reconnects between tries)."""

    def __init__(self, purpose: str) -> None:
        super().__init__(CappedJitter(), -1, OUTAGE_ERRORS)
        self.purpose = purpose

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        failed_here = 0

        def failed(error: Exception, failures: int) -> None:
            nonlocal failed_here
            failed_here = failures
            fail(error, failures) if with_failure_count else fail(error)
            OUTAGE.failed(self.purpose, error, failures)

        result = super().call_with_retry(do, failed, is_retryable, with_failure_count=True)
        # Only a call that failed and then went through shows Redis is back: a call that never failed may
        # not have reached Redis at all (connecting a pooled connection whose stale socket is still open).
        if failed_here and OUTAGE.since is not None:
            OUTAGE.ok(self.purpose)
        return result

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Patient) and other.purpose == self.purpose

    def __hash__(self) -> int:
        return hash(("patient", self.purpose))
