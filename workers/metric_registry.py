"""Which metrics to ask for, per media kind and Graph version, in one place; and what Meta withdrew.

Sets are keyed by ``media_product_type`` (reels report ``media_type=VIDEO``, so the product type
decides), optionally refined as ``PRODUCT_MEDIATYPE`` (e.g. ``FEED_CAROUSEL_ALBUM``), and by the
lowest Graph version they hold for. The TOML config overrides any key: ``[metrics] REELS = [...]``.
A metric Meta rejects is remembered in Redis per (version, kind), so every worker learns it once
and stops asking; it is then reported as ``unsupported`` instead of being requested.
https://developers.facebook.com/documentation/instagram-platform/reference/instagram-media/insights
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from config import contract
from config.settings import Settings
from workers.graph import UNSUPPORTED
from workers.redis_values import text

WITHDRAWN_TTL = 30 * 86400  # re-learn monthly, so a metric Meta brings back is asked for again
ACCOUNT = "ACCOUNT"

_COMMON = ["views", "reach", "shares", "total_interactions"]
# v22.0 retired impressions, plays, clips_replays_count, ig_reels_aggregated_all_plays_count and
# introduced views (https://developers.facebook.com/docs/graph-api/changelog/version22.0).
# facebook_views / crossposted_views are left out: they fail for media not shared to Facebook.
_V22: dict[str, list[str]] = {
    "FEED": [*_COMMON, "likes", "comments", "saved", "follows", "profile_visits", "profile_activity"],
    "REELS": [*_COMMON, "likes", "comments", "saved", "ig_reels_avg_watch_time", "ig_reels_video_view_total_time"],
    "STORY": [*_COMMON, "follows", "profile_visits", "profile_activity", "navigation", "replies"],
    # https://developers.facebook.com/docs/instagram-platform/api-reference/instagram-user/insights
    ACCOUNT: [
        "reach",
        "views",
        "accounts_engaged",
        "total_interactions",
        "likes",
        "comments",
        "saves",
        "shares",
        "replies",
        "profile_links_taps",
    ],
}
# 2025-26 additions (reposts, reels_skip_rate, link_clicks), asked for from v24.0 on.
_V24: dict[str, list[str]] = {
    "FEED": [*_V22["FEED"], "reposts"],
    "REELS": [*_V22["REELS"], "reposts", "reels_skip_rate"],
    "STORY": [*_V22["STORY"], "reposts", "link_clicks"],
    ACCOUNT: [*_V22[ACCOUNT], "reposts"],
}
BY_VERSION: dict[tuple[int, int], dict[str, list[str]]] = {(22, 0): _V22, (24, 0): _V24}

# Account metrics asked for in calls of their own, each with the period, type or breakdown it needs
# (https://developers.facebook.com/docs/instagram-platform/api-reference/instagram-user/insights).
# follows_and_unfollows only comes apart with breakdown=follow_type: FOLLOWER follows, NON_FOLLOWER unfollows.
FOLLOWS = ("follows_and_unfollows", "follow_type", {"FOLLOWER": "follows", "NON_FOLLOWER": "unfollows"})
FOLLOWER_COUNT = "follower_count"  # period=day, time_series only: new followers that day, not the total
ONLINE_FOLLOWERS = "online_followers"  # period=lifetime: {hour: followers online}, the last 30 days only
# period=lifetime with a timeframe, one breakdown per call; TOML ``[metrics]`` overrides each list.
DEFAULT_LISTS: dict[str, list[str]] = {
    "ACCOUNT_DEMOGRAPHICS": ["follower_demographics", "engaged_audience_demographics"],
    "DEMOGRAPHIC_BREAKDOWNS": ["age", "city", "country", "gender"],
    "DEMOGRAPHIC_TIMEFRAMES": ["this_week", "this_month"],  # the others are unsupported from v20.0
    # Per-media breakdowns cost one more call per media refresh each, so none are asked for by default.
    "MEDIA_BREAKDOWNS": [],
}
# media metric -> its one breakdown; asking a breakdown with any other metric fails the whole call
# (https://developers.facebook.com/documentation/instagram-platform/reference/instagram-media/insights).
MEDIA_BREAKDOWN = {"navigation": "story_navigation_action_type", "profile_activity": "action_type"}


def _version(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"v(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def defaults(version: str) -> dict[str, list[str]]:
    """The built-in sets for ``version`` (the newest table not newer than it)."""
    wanted = _version(version)
    eligible = [v for v in BY_VERSION if v <= wanted] or [min(BY_VERSION)]
    return BY_VERSION[max(eligible)]


def configured(settings: Settings, kind: str, media_type: str | None = None) -> list[str]:
    """The metric set for a kind, with ``[metrics]`` overrides (lists checked by ``Settings``) applied."""
    overrides = settings.section("metrics")
    table = defaults(settings.graph_api_version)
    for key in (f"{kind}_{media_type}" if media_type else None, kind):
        if key and key in overrides:
            return list(overrides[key])
    return list(table.get(kind, table["FEED"]))


def listed(settings: Settings, key: str) -> list[str]:
    """One of ``DEFAULT_LISTS``, or its ``[metrics]`` override."""
    return list(settings.section("metrics").get(key, DEFAULT_LISTS[key]))


def media_breakdowns(settings: Settings, answered: Mapping[str, float]) -> list[tuple[str, str]]:
    """(metric, breakdown) pairs worth a call for a media: configured, and the metric has a non-zero value."""
    wanted = [m for m in listed(settings, "MEDIA_BREAKDOWNS") if m in MEDIA_BREAKDOWN]
    return [(m, MEDIA_BREAKDOWN[m]) for m in wanted if answered.get(m)]


def withdrawn(redis: Any, version: str, kind: str) -> set[str]:
    """Metrics known to be refused (empty without Redis)."""
    if redis is None:
        return set()
    return {text(m) for m in redis.smembers(contract.withdrawn_metrics(version, kind))}


def withdraw(redis: Any, version: str, kind: str, metric: str) -> None:
    """Remember that Meta refused ``metric`` for ``kind`` on ``version``."""
    if redis is None:
        return
    pipe = redis.pipeline(transaction=False)
    pipe.sadd(contract.withdrawn_metrics(version, kind), metric)
    pipe.expire(contract.withdrawn_metrics(version, kind), WITHDRAWN_TTL)
    pipe.execute()


def plan(settings: Settings, redis: Any, kind: str, media_type: str | None = None) -> tuple[list[str], list[str]]:
    """(metrics to request, metrics to report as unsupported) for one media kind."""
    wanted = configured(settings, kind, media_type)
    gone = withdrawn(redis, settings.graph_api_version, kind)
    return [m for m in wanted if m not in gone], [m for m in wanted if m in gone]


def unsupported(names: Sequence[str]) -> Mapping[str, str]:
    """``unavailable`` entries for metrics Meta no longer answers."""
    return dict.fromkeys(names, UNSUPPORTED)
