"""RQ's scheduler process with a connection igrelay builds, and a quiet stop while Redis is away.

RQ's scheduler rebuilds its connection from the worker's: the client's class, the pool's connection
class and the pool's connection keywords, into a plain ``ConnectionPool``. That copies pool state
along with the settings (behind Sentinel the keywords carry the sentinel pool's proxy, in older
redis-py the master name and the sentinel manager, which a plain pool refuses), and it skips
whatever the worker's client was built with outside those keywords. Here the scheduler asks
``config.redis_conn`` for its own client instead, in the process that uses it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import FrameType
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq.scheduler import RQScheduler

from config import redis_conn

log = logging.getLogger("igrelay.scheduler")


class Scheduler(RQScheduler):
    """``RQScheduler`` whose Redis client comes from ``connect()``."""

    def __init__(self, *args: Any, connect: Callable[[], Redis], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connect = connect

    @property
    def connection(self) -> Redis:
        # RQ drops the client before forking the scheduler process; the child builds its own here.
        client: Redis | None = self._connection
        if client is None:
            client = self._connection = self.connect()  # type: ignore[assignment]
        return client

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Stop; a command waiting for Redis to come back gives up instead of holding the stop."""
        redis_conn.stop_waiting()
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def work(self) -> None:
        try:
            super().work()  # type: ignore[no-untyped-call]
        except RedisError as exc:
            if not self._stop_requested:
                raise
            log.warning("scheduler stopped while Redis was unreachable (%s)", type(exc).__name__)
