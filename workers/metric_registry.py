"""Which metrics to ask for, per product type, media type and login type, in one place; and what Meta withdrew.

Every metric says which ``media_product_type`` kinds (reels report ``media_type=VIDEO``, so the
product type decides) and which login types it holds for: Facebook-Login-only metrics are never
asked on graph.instagram.com. The TOML config overrides a kind's set: ``[metrics] REELS = [...]``
or ``FEED_CAROUSEL_ALBUM = [...]``. A metric Meta refuses is remembered in Redis per (version,
product type, media type), so every worker learns it once and stops asking, and is reported as
``unsupported``; once a day one media of that set asks for it again, so a metric Meta serves again
comes back.
https://developers.facebook.com/documentation/instagram-platform/reference/instagram-media/insights
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from config import contract
from config.settings import Settings
from workers.graph import UNSUPPORTED
from workers.redis_values import text

WITHDRAWN_TTL = 30 * 86400  # forgotten after a month without a refusal
PROBE_INTERVAL = 86400  # one media per withdrawn set asks for the withdrawn metrics again, daily
ACCOUNT = "ACCOUNT"
BOTH = frozenset({"instagram", "facebook"})
FACEBOOK = frozenset({"facebook"})


@dataclass(frozen=True)
class Metric:
    """A metric, the kinds it is asked for and the login types Meta answers it under."""

    name: str
    kinds: frozenset[str]
    logins: frozenset[str] = BOTH


def _m(name: str, kinds: str, logins: frozenset[str] = BOTH) -> Metric:
    return Metric(name, frozenset(kinds.split()), logins)


# v22.0 retired impressions, plays, clips_replays_count, ig_reels_aggregated_all_plays_count and
# introduced views (https://developers.facebook.com/docs/graph-api/changelog/version22.0); every version
# Meta still serves is v22.0 or later. reposts and reels_skip_rate apply to all of them
# (https://developers.facebook.com/docs/instagram-platform/changelog, 2025-12-03 and 2026-06-22).
# link_clicks and the total_* metrics exist only with Facebook Login (same changelog, 2026-06-22).
# facebook_views / crossposted_views are left out: they fail for media not shared to Facebook.
MEDIA_METRICS = (
    _m("views", "FEED REELS STORY"),
    _m("reach", "FEED REELS STORY"),
    _m("shares", "FEED REELS STORY"),
    _m("total_interactions", "FEED REELS STORY"),
    _m("likes", "FEED REELS"),
    _m("comments", "FEED REELS"),
    _m("saved", "FEED REELS"),
    _m("follows", "FEED STORY"),
    _m("profile_visits", "FEED STORY"),
    _m("profile_activity", "FEED STORY"),
    _m("navigation", "STORY"),
    _m("replies", "STORY"),
    _m("ig_reels_avg_watch_time", "REELS"),
    _m("ig_reels_video_view_total_time", "REELS"),
    _m("reposts", "FEED REELS STORY"),
    _m("reels_skip_rate", "REELS"),
    _m("link_clicks", "STORY", FACEBOOK),
    _m("total_views", "FEED REELS STORY", FACEBOOK),
    _m("total_likes", "FEED REELS", FACEBOOK),
    _m("total_comments", "FEED REELS", FACEBOOK),
)
# https://developers.facebook.com/docs/instagram-platform/api-reference/instagram-user/insights
ACCOUNT_METRICS = tuple(
    _m(name, ACCOUNT)
    for name in (
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
        "reposts",
    )
)
METRICS = MEDIA_METRICS + ACCOUNT_METRICS

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


def defaults(login_type: str = "instagram") -> dict[str, list[str]]:
    """The built-in sets per kind (FEED, REELS, STORY, ACCOUNT) for ``login_type``."""
    kinds = ("FEED", "REELS", "STORY", ACCOUNT)
    return {k: [m.name for m in METRICS if k in m.kinds and login_type in m.logins] for k in kinds}


def configured(settings: Settings, kind: str, media_type: str | None = None) -> list[str]:
    """The metric set for a kind, with ``[metrics]`` overrides (lists checked by ``Settings``) applied."""
    overrides = settings.section("metrics")
    for key in (f"{kind}_{media_type}" if media_type else None, kind):
        if key and key in overrides:
            return list(overrides[key])
    table = defaults(settings.login_type)
    return list(table.get(kind, table["FEED"]))


def listed(settings: Settings, key: str) -> list[str]:
    """One of ``DEFAULT_LISTS``, or its ``[metrics]`` override."""
    return list(settings.section("metrics").get(key, DEFAULT_LISTS[key]))


def media_breakdowns(settings: Settings, answered: Mapping[str, float]) -> list[tuple[str, str]]:
    """(metric, breakdown) pairs worth a call for a media: configured, and the metric has a non-zero value."""
    wanted = [m for m in listed(settings, "MEDIA_BREAKDOWNS") if m in MEDIA_BREAKDOWN]
    return [(m, MEDIA_BREAKDOWN[m]) for m in wanted if answered.get(m)]


def withdrawn(redis: Any, version: str, kind: str, media_type: str | None = None) -> set[str]:
    """Metrics known to be refused for this product and media type (empty without Redis)."""
    if redis is None:
        return set()
    return {text(m) for m in redis.smembers(contract.withdrawn_metrics(version, kind, media_type))}


def withdraw(redis: Any, version: str, kind: str, media_type: str | None, metrics: Iterable[str]) -> None:
    """Remember that Meta refused ``metrics``; the set is probed again after ``PROBE_INTERVAL``."""
    names = list(metrics)
    if redis is None or not names:
        return
    key = contract.withdrawn_metrics(version, kind, media_type)
    pipe = redis.pipeline(transaction=False)
    pipe.sadd(key, *names)
    pipe.expire(key, WITHDRAWN_TTL)
    pipe.set(contract.metrics_probe(version, kind, media_type), 1, ex=PROBE_INTERVAL)
    pipe.execute()


def restore(redis: Any, version: str, kind: str, media_type: str | None, metrics: Iterable[str]) -> None:
    """Forget refusals of ``metrics``: Meta answered them again."""
    names = list(metrics)
    if redis is not None and names:
        redis.srem(contract.withdrawn_metrics(version, kind, media_type), *names)


def claim_probe(redis: Any, version: str, kind: str, media_type: str | None) -> bool:
    """True for the one call per ``PROBE_INTERVAL`` that asks for a set's withdrawn metrics again."""
    key = contract.metrics_probe(version, kind, media_type)
    return bool(redis is not None and redis.set(key, 1, nx=True, ex=PROBE_INTERVAL))


@dataclass
class Plan:
    """What one call asks for: ``ask``; ``gone`` are reported unsupported; ``probing`` re-asks withdrawn ones."""

    ask: list[str]
    gone: list[str]
    probing: list[str]


def plan(settings: Settings, redis: Any, kind: str, media_type: str | None = None) -> Plan:
    """The metrics to request for one media kind, leaving out the withdrawn ones unless it is probe time."""
    wanted = configured(settings, kind, media_type)
    known = withdrawn(redis, settings.graph_api_version, kind, media_type) & set(wanted)
    if known and claim_probe(redis, settings.graph_api_version, kind, media_type):
        return Plan(wanted, [], [m for m in wanted if m in known])
    return Plan([m for m in wanted if m not in known], [m for m in wanted if m in known], [])


def unsupported(names: Sequence[str]) -> Mapping[str, str]:
    """``unavailable`` entries for metrics Meta no longer answers."""
    return dict.fromkeys(names, UNSUPPORTED)
