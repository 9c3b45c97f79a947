"""Per-media and per-account fetch state in Redis, and when a media is due again.

``igrelay:media:ACCOUNT:MEDIA`` holds first_seen, kind, media_type, timestamp, permalink, the digest of
the last emitted metrics, transient attempts, measured, gone_at and terminal; an account is paused while
Meta throttles it, and is flagged when its token is refused (``config.accounts.flag``). Kept apart from
``workers.fetch`` so polling, backfill, the watchdog and ``igrelay check`` use the same keys without the fetch
machinery.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

from redis import Redis

from config import accounts, contract, stats
from config.settings import Settings
from workers import graph

# A media's state field -> the Graph node field it is copied from.
NODE_FIELDS_BY_STATE = {
    "kind": "media_product_type",
    "media_type": "media_type",
    "timestamp": "timestamp",
    "permalink": "permalink",
}
STORY_LAST_LOOK = 23 * 3600  # story insights die with the story at 24 h: look once more just before
STORY_LIFETIME = 24 * 3600
GONE_CONFIRM = 3600  # 100/33 is sometimes transient: a media is gone once Meta says so twice, this far apart

log = logging.getLogger("igrelay.fetch")


def from_node(node: Mapping[str, Any]) -> dict[str, str]:
    """The state fields a Graph media node gives (types, timestamp, permalink), as text."""
    return {k: str(node[v]) for k, v in NODE_FIELDS_BY_STATE.items() if node.get(v)}


def to_node(media_id: str, state: Mapping[str, str]) -> dict[str, Any]:
    """The Graph media node as far as the stored state knows it."""
    return {"id": media_id, **{v: state.get(k) for k, v in NODE_FIELDS_BY_STATE.items()}}


def save(
    pipe: Any, settings: Settings, account: str, media_id: str, state: Mapping[str, Any], first_seen: float
) -> None:
    """Store ``state`` in the media's hash (``first_seen`` unless known), kept past its last refresh."""
    key = contract.media(account, media_id)
    if state:
        pipe.hset(key, mapping=dict(state))
    pipe.hsetnx(key, "first_seen", int(first_seen))
    pipe.expire(key, state_ttl(settings))


def pause(pipe: Any, account: str, until: float, seconds: int) -> None:
    """Pause ``account`` (Meta throttled it) until the epoch second ``until``."""
    pipe.set(contract.paused_until(account), int(until), ex=max(seconds, 1))


def throttled_accounts(settings: Settings, account: str, exc: graph.ThrottledError) -> list[str]:
    """Every account a throttle applies to: all (app limit), those sharing the token (user limit), or one."""
    # https://developers.facebook.com/docs/graph-api/overview/rate-limiting
    if exc.scope == "app":
        return list(dict.fromkeys([account, *settings.accounts]))
    if exc.scope == "user":
        token = settings.token_for(account)
        return list(dict.fromkeys([account, *(a for a in settings.accounts if settings.token_for(a) == token)]))
    return [account]


def is_paused(redis: Redis, account: str) -> bool:
    """True while Meta's throttling pause of ``account`` lasts."""
    return bool(redis.exists(contract.paused_until(account)))


def state_ttl(settings: Settings) -> int:
    """A media's state outlives its last scheduled refresh by a day."""
    return max(settings.refresh_schedule, default=0) + 86400


def needs_reauth(redis: Redis, settings: Settings, account: str) -> bool:
    """True while the account's flagged token is still the one it would use."""
    return accounts.flagged(redis, settings, account)


def flag_reauth(pipe: Any, settings: Settings, account: str, exc: Exception) -> None:
    """Mark ``account`` as needing reconnection, count it and say so once."""
    # Flag by the failing token's mark, so configuring a new token (or reconnecting) clears it.
    accounts.flag(pipe, settings, account)
    stats.incr(pipe, "igrelay_account_needs_reauth_total")
    log.error("account needs reconnection; its fetches are stopped", extra={"account": account, "error": str(exc)})


def backoff(attempt: int) -> float:
    """Jittered exponential backoff: about 30 s, 60 s, 120 s ... capped at an hour."""
    return float(min(30 * 2 ** (attempt - 1), 3600) * random.uniform(0.75, 1.25))  # jitter, not crypto


def next_refresh(
    first_seen: float, now: float, offsets: tuple[int, ...], story_posted: float | None = None
) -> float | None:
    """The next refresh after ``now``: ``offsets`` after ``first_seen``, or for a story after it was
    posted (``IGRELAY_STORY_SCHEDULE``) with one last look before it expires, then none."""
    times = [first_seen + o for o in offsets]
    if story_posted is not None:
        last = story_posted + STORY_LAST_LOOK
        times = [story_posted + o for o in offsets if o < STORY_LIFETIME and story_posted + o < last] + [last]
    upcoming = [t for t in times if t > now]
    return min(upcoming) if upcoming else None


def refresh_after(settings: Settings, state: Mapping[str, str], now: float) -> float | None:
    """When a media with this state is due next: the story schedule for stories, else the refresh schedule."""
    first_seen = float(state.get("first_seen") or now)
    posted = story_posted(state)
    if posted is None and state.get("kind") == "STORY":
        posted = first_seen
    offsets = settings.story_schedule if posted is not None else settings.refresh_schedule
    return next_refresh(first_seen, now, offsets, posted)


def story_posted(state: Mapping[str, str]) -> float | None:
    """When a story was posted (None for other media)."""
    if state.get("kind") != "STORY":
        return None
    return graph.epoch(state.get("timestamp"))
