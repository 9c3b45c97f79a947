"""Live state from Redis: queues, schedules, sinks and accounts, read in a few round trips."""

from __future__ import annotations

import json
import time
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.registry import ScheduledJobRegistry

from config import accounts as registry
from config import contract, deadletters, sinkconf, stats
from config.rq import QUEUE, SERIALIZER
from config.settings import Settings
from config.tables import SQL_SCHEMES

SINK_STAT = "igrelay_sink_deliveries_total"
PAUSES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400}  # how long the console's pause button pauses


def text(raw: Any) -> str:
    """Redis bytes as text."""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def redis_up(redis: Redis) -> bool:
    """True when Redis answers."""
    try:
        return bool(redis.ping())
    except RedisError:
        return False


def depths(redis: Redis, now: float | None = None) -> dict[str, int]:
    """Inbox entries, of them read but not acknowledged, queued jobs, fetches due, fetches scheduled, dead letters."""
    now = now or time.time()
    pipe = redis.pipeline(transaction=False)
    pipe.xlen(contract.INBOX)
    pipe.zcount(contract.FETCH_DUE, "-inf", now)
    pipe.zcard(contract.FETCH_DUE)
    inbox, due, scheduled = pipe.execute()
    try:
        pending = int(redis.xpending(contract.INBOX, contract.INBOX_GROUP)["pending"])
    except RedisError:  # no group yet: nothing was ever drained
        pending = 0
    queued = Queue(QUEUE, connection=redis, serializer=SERIALIZER).count
    return {
        "inbox": int(inbox),
        "inbox_pending": pending,
        "queued": queued,
        "fetches_due": int(due),
        "fetches_scheduled": int(scheduled),
        "failed": deadletters.count(redis),
    }


def sink_counts(redis: Redis) -> dict[str, dict[str, int]]:
    """``{sink: {outcome: count}}`` from the delivery counters."""
    out: dict[str, dict[str, int]] = {}
    for raw, value in redis.hgetall(contract.STATS).items():
        name, labels = stats.parse_field(text(raw))
        if name == SINK_STAT and "sink" in labels:
            out.setdefault(labels["sink"], {})[labels.get("outcome", "")] = int(value)
    return out


def retrying(redis: Redis, limit: int = 500) -> dict[str, int]:
    """Deliveries waiting for a retry, per sink (at most ``limit`` scheduled jobs looked at)."""
    from rq.job import Job

    registry = ScheduledJobRegistry(QUEUE, connection=redis, serializer=SERIALIZER)
    ids = [i for i in registry.get_job_ids(0, limit - 1) if not i.startswith("tick-")]
    out: dict[str, int] = {}
    for job in Job.fetch_many(ids, connection=redis, serializer=SERIALIZER):
        sink = deadletters.sink_of(job) if job is not None else None
        if sink and job is not None and job.meta.get("attempts"):
            out[sink] = out.get(sink, 0) + 1
    return out


def sinks(redis: Redis, settings: Settings, letters: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Each configured sink by name (never its URL): counts, state and its last error (redacted)."""
    letters = deadletters.list_failed(redis) if letters is None else letters
    counts, waiting = sink_counts(redis), retrying(redis)
    out = []
    for name, (url, _options) in sinkconf.configured(settings).items():
        dead = [d for d in letters if d["sink"] == name]
        disabled = redis.get(contract.sink_disabled(name))
        state = "disabled" if disabled else "failing" if dead or waiting.get(name) else "ok"
        last = dead[-1] if dead else None
        out.append(
            {
                "name": name,
                "scheme": sinkconf.scheme(url),
                "sql": sinkconf.scheme(url) in SQL_SCHEMES,
                "delivered": counts.get(name, {}).get("delivered", 0),
                "failed": counts.get(name, {}).get("failed", 0),
                "retrying": waiting.get(name, 0),
                "dead_letters": len(dead),
                "disabled_since": int(text(disabled)) if disabled else None,
                "state": state,
                "last_error": ": ".join(p for p in (last["exception"], last["message"]) if p) if last else None,
            }
        )
    return out


def account(redis: Redis, settings: Settings, account_id: str, now: float | None = None) -> dict[str, Any]:
    """What Redis knows about one account: pause, reconnect, last delivery, watchdog, token, media."""
    now = now or time.time()
    pipe = redis.pipeline(transaction=False)
    pipe.get(contract.paused_until(account_id))
    pipe.exists(contract.needs_reauth(account_id))
    pipe.get(contract.last_delivery(account_id))
    pipe.hgetall(contract.watchdog(account_id))
    pipe.hmget(contract.token(account_id), "expires_at", "issued_at")
    pipe.zcard(contract.known_media(account_id))
    paused, reauth, last, watch, (expires, issued), media = pipe.execute()
    watch = {text(k): text(v) for k, v in watch.items()}
    paused_until = int(text(paused)) if paused and int(text(paused)) > now else None
    problems = json.loads(watch.get("problems") or "{}")
    return {
        "id": account_id,
        **registry.describe(redis, settings, account_id, now),
        "paused_until": paused_until,
        "needs_reconnect": bool(reauth),
        "last_delivery": float(text(last)) if last else None,
        "watchdog": watch.get("problem") or ("ok" if watch.get("checked_at") else "not checked yet"),
        "watchdog_problems": sorted(problems),
        "token_expires": int(text(expires)) if expires else None,
        "token_issued": int(text(issued)) if issued else None,
        "known_media": int(media),
        "attention": bool(reauth) or bool(problems) or paused_until is not None,
    }


def accounts(redis: Redis, settings: Settings) -> list[dict[str, Any]]:
    """Every account of the registry (the environment's and connected ones)."""
    return [account(redis, settings, a) for a in registry.ids(redis, settings)]


def enable_sink(redis: Redis, name: str) -> None:
    """Re-enable a sink disabled after a 410 Gone."""
    redis.delete(contract.sink_disabled(name))
