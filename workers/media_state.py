"""Per-media and per-account fetch state in Redis, and when a media is due again.

``igrelay:media:ACCOUNT:MEDIA`` holds first_seen, kind, media_type, timestamp, the digest of the
last emitted metrics and transient attempts; an account is paused while Meta throttles it and
flagged when its token is refused. Kept apart from ``workers.fetch`` so polling, the watchdog and
``igrelay check`` read the same keys without the fetch machinery.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime
from typing import Any

from redis import Redis

from config import stats
from config.settings import Settings
from workers import schedule
from workers.graph_client import fingerprint

MEDIA_PREFIX = "igrelay:media:"
STORY_LAST_LOOK = 23 * 3600  # story insights die with the story at 24 h: look once more just before

log = logging.getLogger("igrelay.fetch")


def paused_key(account: str) -> str:
    """Set while ``account`` is throttled; the value is the epoch second the pause ends."""
    return f"igrelay:account:{account}:paused_until"


def reauth_key(account: str) -> str:
    """Set when ``account``'s token failed; holds the failed token's fingerprint."""
    return f"igrelay:account:{account}:needs_reauth"


def media_key(account: str, media_id: str) -> str:
    """The per-media state hash."""
    return MEDIA_PREFIX + schedule.member(account, media_id)


def state_ttl(settings: Settings) -> int:
    """A media's state outlives its last scheduled refresh by a day."""
    return max(settings.refresh_schedule, default=0) + 86400


def needs_reauth(redis: Redis, settings: Settings, account: str) -> bool:
    """True while the account's flagged token is still the configured one."""
    flagged = redis.get(reauth_key(account))
    return flagged is not None and flagged.decode() == fingerprint(settings.token_for(account))


def flag_reauth(pipe: Any, settings: Settings, account: str, exc: Exception) -> None:
    """Mark ``account`` as needing reconnection, count it and say so once."""
    # Flag by the failing token's fingerprint, so configuring a new token clears it.
    pipe.set(reauth_key(account), fingerprint(settings.token_for(account)))
    stats.incr(pipe, "igrelay_account_needs_reauth_total", account=account)
    log.error("account needs reconnection; its fetches are stopped", extra={"account": account, "error": str(exc)})


def backoff(attempt: int) -> float:
    """Jittered exponential backoff: about 30 s, 60 s, 120 s ... capped at an hour."""
    return min(30 * 2 ** (attempt - 1), 3600) * random.uniform(0.75, 1.25)  # jitter, not crypto


def meta_epoch(raw: str) -> float | None:
    """Epoch seconds from Meta's ``2026-11-20T10:00:00+0000``."""
    try:
        return datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


def next_refresh(first_seen: float, now: float, offsets: tuple[int, ...], story_posted: float | None = None) -> Any:
    """The next refresh time after ``now``; a story gets one last look before it expires, then none."""
    times = [first_seen + o for o in offsets]
    if story_posted is not None:
        times = [t for t in times if t < story_posted + STORY_LAST_LOOK] + [story_posted + STORY_LAST_LOOK]
    upcoming = [t for t in times if t > now]
    return min(upcoming) if upcoming else None


def story_posted(state: dict[str, str]) -> float | None:
    if state.get("kind") != "STORY" or not state.get("timestamp"):
        return None
    return meta_epoch(state["timestamp"])
