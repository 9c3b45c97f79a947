"""An account's history: every media since a date gets one fetch, and each past day its account insights.

``start`` writes the account's backfill hash (``since``, progress counters, an empty ``/media`` cursor)
and adds it to ``igrelay:backfill:active`` and to the backfill due set. ``due`` (a tick task) enqueues
one ``backfill_step`` per active account due a look (every ``periodic.BACKFILL_EVERY``) under a lock,
so one step per account is ever in flight; a step lists up to ``MEDIA_PER_STEP`` media from the
cursor (paged ``/media``, newest first, down to ``since``), fetches the ones no backfill or poll has
fetched with the fetch machinery, then saves the cursor; once the
listing is done it fetches up to ``DAYS_PER_STEP`` past days of account insights (a 30-day window);
then it enqueues the next step itself, at the back of igrelay's one queue, behind live work. A
restarted worker resumes from the saved cursor (the lock expires). Backfilled media start their
refresh schedule at their publication time, so media older than the schedule get no follow-ups.
Fetched media ids and days are remembered, so a second backfill fetches none of them again.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Any

from redis import Redis
from rq import Queue

from config import accounts, contract, periodic
from config.rq import QUEUE, SERIALIZER, presets
from config.settings import Settings
from workers import account_insights, fetch, graph, media_state
from workers.context import Context
from workers.graph import AuthError, ThrottledError
from workers.graph_client import open_client
from workers.redis_values import text_map

MAX_DAYS = 730  # Meta keeps about two years of insights
DEFAULT_DAYS = 90
MEDIA_PER_STEP = 200
PAGE_SIZE = 100
DAYS_PER_STEP = 30  # the longest window Meta's account insights take
DAY_THREADS = 6
LOCK_SECONDS = 120
TRIGGER = "backfill"
log = logging.getLogger("igrelay.backfill")


def start(redis: Redis, settings: Settings, account: str, days: int = DEFAULT_DAYS, now: float | None = None) -> None:
    """Begin (or begin again) the account's backfill of the last ``days`` days, at most two years."""
    now = now or time.time()
    days = max(1, min(days, MAX_DAYS))
    since = now - days * 86400
    wanted = _days(since, now)
    done = _days_done(redis, account, wanted)
    state: dict[Any, Any] = {"since": int(since), "cursor": "", "listed": 0, "media_found": 0}
    state |= {"media_done": 0, "days_wanted": len(wanted), "days_done": len(done), "started_at": int(now)}
    state["finished_at"] = ""
    with redis.pipeline(transaction=True) as pipe:
        pipe.delete(contract.backfill(account))
        pipe.hset(contract.backfill(account), mapping=state)
        pipe.sadd(contract.BACKFILLS, account)
        periodic.soon(pipe, periodic.BACKFILL, account, now + LOCK_SECONDS)  # in case the first step is lost
        pipe.execute()
    if redis.set(contract.lock("backfill", account), b"1", nx=True, ex=LOCK_SECONDS):
        enqueue_step(redis, account)  # now, rather than on the next tick
    log.info("backfill started", extra={"account": account, "days": days})


def _days(since: float, now: float) -> list[str]:
    """Meta's days from the one holding ``since`` to the last one over, oldest first."""
    first = datetime.fromtimestamp(since, account_insights.PACIFIC).date()
    last = date.fromisoformat(account_insights.due_days(now)["first"])
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def _days_done(redis: Redis, account: str, days: list[str]) -> set[str]:
    """Days already fetched by a backfill or by the daily task."""
    if not days:
        return set()
    marked = redis.smismember(contract.backfilled_days(account), days)
    pipe = redis.pipeline(transaction=False)
    for day in days:
        pipe.exists(contract.account_day(account, day))
    fetched = pipe.execute()
    return {d for d, m, f in zip(days, marked, fetched, strict=True) if m or f}


def due(ctx: Context, now: float | None = None) -> int:
    """Tick task: enqueue a step for each backfill due a look that is active and has none in flight."""
    redis, claimed = ctx.redis, [a for a, _ in periodic.claim(ctx.redis, ctx.settings, periodic.BACKFILL, now)]
    if not claimed:
        return 0
    running = [a for a, r in zip(claimed, redis.smismember(contract.BACKFILLS, claimed), strict=True) if r]
    if done := [a for a in claimed if a not in running]:
        redis.zrem(contract.due(periodic.BACKFILL), *done)
    n = 0
    for account in accounts.active(redis, ctx.settings, running):
        if redis.set(contract.lock("backfill", account), b"1", nx=True, ex=LOCK_SECONDS):
            enqueue_step(redis, account)
            n += 1
    return n


def enqueue_step(redis: Redis, account: str) -> None:
    """Put the account's next step at the back of the queue (its lock is held by the caller)."""
    options = {**presets()["periodic"], "job_timeout": LOCK_SECONDS - 10, "retry": None}
    Queue(QUEUE, connection=redis, serializer=SERIALIZER).enqueue(
        contract.Jobs.BACKFILL_STEP, args=(account,), description=f"backfill {account}", **options
    )


def step(redis: Redis, settings: Settings, account: str, now: float | None = None) -> bool:
    """One budgeted step; True when it chained the next one."""
    now = now or time.time()
    more = False
    try:
        state = text_map(redis.hgetall(contract.backfill(account)))
        if state and not state.get("finished_at") and accounts.known(redis, settings, account):
            more = (
                _media(redis, settings, account, state, now)
                if state.get("listed") != "1"
                else _days_step(redis, settings, account, state, now)
            )
    finally:
        if more:
            redis.set(contract.lock("backfill", account), b"1", ex=LOCK_SECONDS)
            enqueue_step(redis, account)
        else:
            redis.delete(contract.lock("backfill", account))
    return more


def _media(redis: Redis, settings: Settings, account: str, state: dict[str, str], now: float) -> bool:
    """List up to ``MEDIA_PER_STEP`` media from the cursor and fetch the new ones."""
    since, cursor = float(state["since"]), state.get("cursor") or None
    nodes: list[dict[str, Any]] = []
    listed = False
    with open_client(settings, redis, 2, purpose="backfill") as client:
        try:
            while len(nodes) < MEDIA_PER_STEP and not listed:
                body = client.get(account, f"{account}/media", graph.listing_params(PAGE_SIZE, cursor))
                page, cursor = graph.parse_listing(body)
                recent = [n for n in page if (graph.epoch(n.get("timestamp")) or now) >= since]
                nodes += recent
                listed = len(recent) < len(page) or not cursor
        except (AuthError, ThrottledError) as exc:
            account_insights._blocked(redis, settings, account, exc, now)
            return False
    new = _unfetched(redis, account, nodes)
    _fetch(redis, settings, account, new, now)
    with redis.pipeline(transaction=True) as pipe:
        if nodes:
            pipe.sadd(contract.backfilled_media(account), *(str(n["id"]) for n in nodes))
        progress: dict[Any, Any] = {"cursor": cursor or "", "listed": int(listed)}
        oldest = [t for t in (graph.epoch(n.get("timestamp")) for n in nodes) if t is not None]
        if oldest:
            progress["reached"] = int(min(oldest))
        pipe.hset(contract.backfill(account), mapping=progress)
        pipe.hincrby(contract.backfill(account), "media_found", len(nodes))
        pipe.hincrby(contract.backfill(account), "media_done", len(nodes))
        pipe.execute()
    return True


def _unfetched(redis: Redis, account: str, nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The nodes neither a backfill nor polling has fetched."""
    if not nodes:
        return []
    ids = [str(n["id"]) for n in nodes]
    done = redis.smismember(contract.backfilled_media(account), ids)
    known = redis.zmscore(contract.known_media(account), ids)
    return [n for n, d, k in zip(nodes, done, known, strict=True) if not d and k is None]


def _fetch(redis: Redis, settings: Settings, account: str, nodes: list[dict[str, Any]], now: float) -> None:
    """One fetch of each node, its refresh schedule counted from its publication (older ones get none)."""
    if not nodes:
        return
    with redis.pipeline(transaction=True) as pipe:
        for node in nodes:
            posted = graph.epoch(node.get("timestamp")) or now
            media_state.save(pipe, settings, account, str(node["id"]), media_state.from_node(node), posted)
            pipe.zadd(contract.known_media(account), {str(node["id"]): posted})
        pipe.execute()
    fetch.fetch_batch(redis, settings, [[account, str(n["id"]), TRIGGER] for n in nodes])


def _days_step(redis: Redis, settings: Settings, account: str, state: dict[str, str], now: float) -> bool:
    """Fetch up to ``DAYS_PER_STEP`` past days of account insights; finish when none is left."""
    wanted = _days(float(state["since"]), now)
    pending = [d for d in wanted if d not in _days_done(redis, account, wanted)][:DAYS_PER_STEP]
    if not pending:
        redis.hset(contract.backfill(account), mapping={"finished_at": int(now), "days_done": len(wanted)})
        redis.srem(contract.BACKFILLS, account)
        log.info("backfill finished", extra={"account": account})
        return False

    def one(day: str) -> bool:
        return bool(account_insights.fetch_day(redis, settings, account, day, now))

    with ThreadPoolExecutor(max_workers=DAY_THREADS) as pool:
        fetched = [d for d, ok in zip(pending, pool.map(one, pending), strict=True) if ok]
    if fetched:
        redis.sadd(contract.backfilled_days(account), *fetched)
    redis.hset(contract.backfill(account), "days_done", len(_days_done(redis, account, wanted)))
    return len(fetched) == len(pending) or accounts.active(redis, settings, [account]) == [account]


status = accounts.backfill_status  # the console reads it too, so it lives in config
