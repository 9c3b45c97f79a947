"""Periodic per-account work: new-media discovery, daily account insights, token refreshes.

Meta has no webhook for new media, so each account's ``/media`` and ``/stories`` are paged
newest first down to the first media already known (a per-account sorted set of ids by
timestamp). Each tick task decides itself whether it is due, takes a ``SET NX EX`` lock per
account so any number of workers do it once, and enqueues the work as an RQ job.
https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-user/media
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from rq import Queue

from config.rq import QUEUE, SERIALIZER, presets
from config.settings import Settings
from workers import delivery, media_state, records, schedule
from workers.graph import AuthError, ThrottledError
from workers.graph_client import TOKEN_PREFIX, GraphClient, fingerprint, new_session, timeout_for

MAX_PAGES = 20
TOKEN_MIN_AGE = (
    24 * 3600
)  # https://developers.facebook.com/documentation/instagram-platform/reference/refresh_access_token
log = logging.getLogger("igrelay.polling")


def known_key(account: str) -> str:
    """Media ids already discovered for ``account``, scored by their timestamp."""
    return f"igrelay:account:{account}:media"


def _active(redis: Redis, settings: Settings) -> list[str]:
    """Accounts neither flagged for reconnection nor paused."""
    return [
        a
        for a in settings.accounts
        if not media_state.needs_reauth(redis, settings, a) and not redis.exists(media_state.paused_key(a))
    ]


def _enqueue_each(ctx: Any, task: str, ttl: int, job: str, preset: str) -> int:
    """Enqueue ``job(account)`` for every active account whose ``task`` lock is free."""
    q = Queue(QUEUE, connection=ctx.redis, serializer=SERIALIZER)
    n = 0
    for account in _active(ctx.redis, ctx.settings):
        if ctx.redis.set(f"igrelay:lock:{task}:{account}", b"1", nx=True, ex=ttl):
            q.enqueue(job, args=(account,), description=f"{task} {account}", **presets()[preset])
            n += 1
    return n


def poll_due(ctx: Any) -> int:
    """Tick task: poll each account every ``IGRELAY_POLL_INTERVAL`` (0 turns polling off)."""
    if not ctx.settings.poll_interval:
        return 0
    return _enqueue_each(ctx, "poll", ctx.settings.poll_interval, "workers.jobs.poll_account", "fetch")


def account_insights_due(ctx: Any) -> int:
    """Tick task: yesterday's account insights, once a day per account."""
    day = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    return _enqueue_each(ctx, f"account_insights:{day}", 2 * 86400, "workers.jobs.account_insights", "periodic")


def token_refresh_due(ctx: Any) -> int:
    """Tick task: look at each Instagram Login token every 6 h (it is refreshed once 24 h old)."""
    if not ctx.settings.is_instagram_login:
        return 0
    return _enqueue_each(ctx, "token_refresh", 6 * 3600, "workers.jobs.refresh_token", "periodic")


def poll_account(redis: Redis, settings: Settings, account: str, now: float | None = None) -> int:
    """Discover new media and stories; each gets a fetch now and its refresh schedule."""
    now = now or time.time()
    cutoff = now - max(settings.refresh_schedule, default=86400)  # older media are past their schedule
    with new_session(2) as session:
        client = GraphClient(session, settings, redis, timeout_for(settings))
        try:
            found = [n for edge in ("media", "stories") for n in _new_on_edge(client, redis, account, edge, cutoff)]
        except (AuthError, ThrottledError) as exc:
            return _blocked(redis, settings, account, exc, now)
    pipe = redis.pipeline(transaction=True)
    for node in found:
        _discovered(pipe, settings, account, node, now)
    pipe.zremrangebyscore(known_key(account), "-inf", cutoff - 86400)
    pipe.expire(known_key(account), media_state.state_ttl(settings))
    pipe.execute()
    if found:
        log.info("new media found", extra={"account": account, "media": len(found)})
    return len(found)


def _new_on_edge(client: GraphClient, redis: Redis, account: str, edge: str, cutoff: float) -> list[dict]:
    """Newest-first pages of ``edge`` down to the first known (or too old) media."""
    found, after = [], None
    for _ in range(MAX_PAGES):
        nodes, after = client.listing(account, edge, after)
        known = redis.zmscore(known_key(account), [n["id"] for n in nodes]) if nodes else []
        for node, score in zip(nodes, known, strict=True):
            posted = media_state.meta_epoch(str(node.get("timestamp") or ""))
            if score is not None or (posted is not None and posted < cutoff):
                return found
            found.append(node)
        if not after:
            break
    return found


def _discovered(pipe: Any, settings: Settings, account: str, node: dict, now: float) -> None:
    """Remember a new media with its type and first-seen time, and ask for its first fetch."""
    media_id = str(node["id"])
    pipe.zadd(known_key(account), {media_id: media_state.meta_epoch(str(node.get("timestamp") or "")) or now})
    state = {
        "kind": node.get("media_product_type"),
        "media_type": node.get("media_type"),
        "timestamp": node.get("timestamp"),
        "permalink": node.get("permalink"),
    }
    key = media_state.media_key(account, media_id)
    pipe.hset(key, mapping={k: str(v) for k, v in state.items() if v})
    pipe.hsetnx(key, "first_seen", int(now))
    pipe.expire(key, media_state.state_ttl(settings))
    schedule.request_fetch(pipe, account, media_id, "poll", now)


def _blocked(redis: Redis, settings: Settings, account: str, exc: Exception, now: float) -> int:
    """Throttled: pause the account; refused token: flag it. The next poll tries again."""
    pipe = redis.pipeline(transaction=True)
    if isinstance(exc, ThrottledError):
        pipe.set(media_state.paused_key(account), int(now + exc.retry_after), ex=max(exc.retry_after, 1))
    else:
        media_state.flag_reauth(pipe, settings, account, exc)
    pipe.execute()
    return 0


def account_insights(redis: Redis, settings: Settings, account: str, now: float | None = None) -> dict | None:
    """Yesterday's account totals (UTC day) plus ``followers_count``, as an ``account_insights`` record."""
    today = datetime.fromtimestamp(now or time.time(), UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since, until = int((today - timedelta(days=1)).timestamp()), int(today.timestamp())
    with new_session(2) as session:
        client = GraphClient(session, settings, redis, timeout_for(settings))
        try:
            result = client.account_insights(account, since, until)
            followers = client.followers_count(account)
        except (AuthError, ThrottledError) as exc:
            redis.delete(f"igrelay:lock:account_insights:{(today - timedelta(days=1)).date()}:{account}")
            _blocked(redis, settings, account, exc, now or time.time())
            return None
    if followers is not None:
        result.metrics["followers_count"] = followers
    record = records.account_insights(
        account, (today - timedelta(days=1)).date().isoformat(), result.metrics, result.unavailable, "schedule"
    )
    delivery.emit(redis, settings, [record])
    return record


def token_age(redis: Redis, settings: Settings, account: str, now: float) -> float:
    """Seconds since the account's current token was issued (or first seen, for a configured one)."""
    key, configured = TOKEN_PREFIX + account, fingerprint(settings.token_for(account))
    source, issued, seen_fp, seen_at = redis.hmget(key, "source", "issued_at", "seen", "seen_at")
    if issued and (source or b"").decode() == configured:
        return now - float(issued)
    if (seen_fp or b"").decode() != configured:
        redis.hset(key, mapping={"seen": configured, "seen_at": int(now)})
        return 0.0
    return now - float(seen_at or now)


def refresh_token(redis: Redis, settings: Settings, account: str, now: float | None = None) -> bool:
    """Refresh the account's long-lived token once it is over 24 h old; True when refreshed."""
    now = now or time.time()
    if not settings.token_for(account) or token_age(redis, settings, account, now) < TOKEN_MIN_AGE:
        return False
    with new_session(1) as session:
        client = GraphClient(session, settings, redis, timeout_for(settings))
        try:
            client.refresh_token(account)
        except AuthError as exc:
            _blocked(redis, settings, account, exc, now)
            return False
    log.info("access token refreshed", extra={"account": account})
    return True
