"""Periodic per-account work: new-media discovery and token refreshes.

Meta has no webhook for new media, so each account's ``/media`` is paged newest first (the order
Meta documents for that edge) down to the first media already known (a per-account sorted set of
ids by timestamp) or older than the refresh schedule; ``/stories``, whose order Meta does not
document, is read whole (it holds only the last 24 hours) and its unknown stories kept. Each tick
task claims the accounts due from its sorted set (``config.periodic``), so any number of workers do it
once, and enqueues the work as an RQ job.
https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-user/media
https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-user/stories
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis import Redis

from config import accounts, contract, crypto, periodic
from config.settings import Settings
from workers import graph, media_state, schedule, ticker
from workers.context import Context
from workers.graph import AuthError, GraphError, ThrottledError
from workers.graph_client import GraphClient, open_client
from workers.redis_values import text

MAX_PAGES = 20
# https://developers.facebook.com/documentation/instagram-platform/reference/refresh_access_token
TOKEN_MIN_AGE = 24 * 3600
RETRY_YOUNG = 6 * 3600  # a token Meta found too young to refresh is asked about again this much later
log = logging.getLogger("igrelay.polling")


def _enqueue_due(ctx: Context, task: str, job: str, preset: str, now: float | None, rate: float = 0.0) -> int:
    """Enqueue ``job(account)`` for every active account whose ``task`` is due (paused or flagged ones wait)."""
    claimed = [a for a, _ in periodic.claim(ctx.redis, ctx.settings, task, now, rate)]
    return ticker.enqueue_each(ctx, task, accounts.active(ctx.redis, ctx.settings, claimed), job, preset)


def poll_due(ctx: Context, now: float | None = None) -> int:
    """Tick task: poll each account every ``IGRELAY_POLL_INTERVAL`` at its own phase (0 turns polling off);
    at most 1.5 times the mean number of polls per tick, so polls never come in a burst."""
    interval = ctx.settings.poll_interval
    if not interval:
        return 0
    rate = 1.5 * ticker.TICK_SECONDS / interval
    return _enqueue_due(ctx, periodic.POLL, contract.Jobs.POLL_ACCOUNT, "fetch", now, rate)


def token_refresh_due(ctx: Context, now: float | None = None) -> int:
    """Tick task: look at each Instagram Login token every 6 h (it is refreshed once 24 h old)."""
    if not ctx.settings.is_instagram_login:
        return 0
    return _enqueue_due(ctx, periodic.TOKEN, contract.Jobs.REFRESH_TOKEN, "periodic", now)


def poll_account(redis: Redis, settings: Settings, account: str, now: float | None = None) -> int:
    """Discover new media and stories; each gets a fetch now and its refresh schedule."""
    now = now or time.time()
    cutoff = now - max(settings.refresh_schedule, default=86400)  # older media are past their schedule
    with open_client(settings, redis, 2, purpose="poll") as client:
        try:
            found = [n for edge in ("media", "stories") for n in _new_on_edge(client, redis, account, edge, cutoff)]
        except (AuthError, ThrottledError) as exc:
            return _blocked(redis, settings, account, exc, now)
    pipe = redis.pipeline(transaction=True)
    for node in found:
        _discovered(pipe, settings, account, node, now)
    pipe.zremrangebyscore(contract.known_media(account), "-inf", cutoff - 86400)
    pipe.expire(contract.known_media(account), media_state.state_ttl(settings))
    pipe.execute()
    if found:
        log.info("new media found", extra={"account": account, "media": len(found)})
    return len(found)


def _new_on_edge(client: GraphClient, redis: Redis, account: str, edge: str, cutoff: float) -> list[dict[str, Any]]:
    """Unknown media of ``edge`` posted after ``cutoff``; ``/media`` stops at the first known or older one."""
    ordered = edge == "media"  # newest first, as the IG User Media reference documents; /stories has no order
    found: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(MAX_PAGES):
        nodes, after = client.listing(account, edge, after)
        known = redis.zmscore(contract.known_media(account), [n["id"] for n in nodes]) if nodes else []
        for node, score in zip(nodes, known, strict=True):
            posted = graph.epoch(node.get("timestamp"))
            old = posted is not None and posted < cutoff
            if ordered and (score is not None or old):
                return found
            if score is None and not old:
                found.append(node)
        if not after:
            break
    return found


def _discovered(pipe: Any, settings: Settings, account: str, node: dict[str, Any], now: float) -> None:
    """Remember a new media with its type and first-seen time, and ask for its first fetch."""
    media_id = str(node["id"])
    pipe.zadd(contract.known_media(account), {media_id: graph.epoch(node.get("timestamp")) or now})
    media_state.save(pipe, settings, account, media_id, media_state.from_node(node), now)
    schedule.request_fetch(pipe, account, media_id, "poll", now)


def _blocked(redis: Redis, settings: Settings, account: str, exc: Exception, now: float) -> int:
    """Throttled: pause the account; refused token: flag it. The next poll tries again."""
    pipe = redis.pipeline(transaction=True)
    if isinstance(exc, ThrottledError):
        for paused in media_state.throttled_accounts(settings, account, exc):  # app- or user-wide limits too
            media_state.pause(pipe, paused, now + exc.retry_after, exc.retry_after)
    else:
        media_state.flag_reauth(pipe, settings, account, exc)
    pipe.execute()
    return 0


def refresh_due(redis: Redis, settings: Settings, account: str, now: float) -> bool:
    """Is the account's token worth a refresh call now?

    A token igrelay refreshed is refreshed again once 24 h old (Meta's minimum age). A configured token's
    age is unknown, so Meta is asked at once; a "too young" answer sets ``not_before`` (see ``refresh_token``).
    """
    key = contract.token(account)
    source, issued, not_before = redis.hmget(key, "source", "issued_at", "not_before")
    configured = accounts.mark(settings, account, source)
    if text(source or b"") != configured:  # never seen, or the configured token changed: start over
        with redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, "source", configured)
            pipe.execute()
        return True
    if not_before and now < float(not_before):
        return False
    return not issued or now - float(issued) >= TOKEN_MIN_AGE


def refresh_token(redis: Redis, settings: Settings, account: str, now: float | None = None) -> bool:
    """Refresh the account's long-lived Instagram Login token when due; True when refreshed and stored."""
    now = now or time.time()
    if settings.login_type != "instagram" or not accounts.token(redis, settings, account):
        return False  # Facebook Login's Page tokens are not refreshed
    if not settings.secret_keys:
        crypto.say_missing(log)  # a refreshed token that cannot be stored would be lost
        return False
    if not refresh_due(redis, settings, account, now):
        return False
    with open_client(settings, redis, 1, purpose="token") as client:
        try:
            client.refresh_token(account, now)
        except AuthError as exc:
            _blocked(redis, settings, account, exc, now)
            return False
        except GraphError as exc:
            if not _too_young(exc):
                raise
            redis.hset(contract.token(account), "not_before", int(now + RETRY_YOUNG))
            log.info("access token too young to refresh; trying again later", extra={"account": account})
            return False
    log.info("access token refreshed", extra={"account": account})
    return True


def _too_young(exc: GraphError) -> bool:
    """Meta's refusal of a token under 24 h old: a plain code 100 (neither auth, throttle nor transient)."""
    plain = not isinstance(exc, (AuthError, ThrottledError, graph.TransientError, graph.TerminalError))
    return plain and getattr(exc, "code", None) == 100
