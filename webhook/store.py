"""The enqueue edge: a verified delivery goes durably into Redis in one round trip.

``put()`` runs one Lua script, atomically: ``XADD`` of the raw body to the inbox stream,
``SET NX`` of a "drain pending" flag, and the accepted counter. Only the request that finds no flag enqueues
the ``workers.jobs.drain_inbox`` job (by dotted path), so under load a delivery costs one
round trip whatever the number of changes in it; the worker's 5 s tick drains the inbox too,
so a lost kick delays a delivery but never loses it.
"""

from __future__ import annotations

import logging
import time

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from config import stats
from config.rq import QUEUE, SERIALIZER, presets

INBOX_KEY = "igrelay:inbox"
PENDING_KEY = "igrelay:inbox:pending"
DRAIN_JOB = "workers.jobs.drain_inbox"

log = logging.getLogger(__name__)

# KEYS: inbox, pending flag, stats hash. ARGV: body, received-at, stats field, flag TTL.
_PUT_LUA = """
local id = redis.call('XADD', KEYS[1], '*', 'b', ARGV[1], 't', ARGV[2])
local first = redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
if first then return {id, 1} end
return {id, 0}
"""
_ACCEPTED = stats.field("igrelay_deliveries_total", outcome="accepted")
# How long one kick covers later deliveries. Short, so a drain job lost with a killed worker is
# replaced by the next delivery within seconds; an extra drain job finds nothing and ends at once.
PENDING_TTL = 5


class StoreUnavailable(Exception):
    """Redis did not take the delivery; the caller answers 503 so Meta retries."""


class DeliveryStore:
    """Writes verified deliveries to the inbox stream and kicks the drain job."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
        self._put = redis.register_script(_PUT_LUA)

    def put(self, body: bytes) -> str:
        """Store ``body``; return its stream entry id. Raises ``StoreUnavailable``."""
        try:
            entry_id, first = self._put(
                keys=[INBOX_KEY, PENDING_KEY, stats.STATS_KEY],
                args=[body, f"{time.time():.3f}", _ACCEPTED, PENDING_TTL],
            )
        except RedisError as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        if first:
            self._kick()
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    def _kick(self) -> None:
        try:
            self.queue.enqueue(DRAIN_JOB, **presets()["ingest"])
        except RedisError as exc:
            # Stored already: the worker's tick drains the inbox even without this job.
            log.warning("drain job not enqueued (%s); the next tick will drain", type(exc).__name__)

    def count(self, outcome: str) -> None:
        """Best-effort counter for a request that stored nothing."""
        try:
            stats.incr(self.redis, "igrelay_deliveries_total", outcome=outcome)
        except RedisError:
            pass

    def ping(self) -> bool:
        """True when Redis answers."""
        try:
            return bool(self.redis.ping())
        except RedisError:
            return False
