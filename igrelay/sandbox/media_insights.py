"""Media insights the way ``GET /<MEDIA_ID>/insights`` answers them: which metric is valid for which
media, Meta's code-100 messages, and deterministic values that grow with the media's age.

https://developers.facebook.com/docs/instagram-platform/reference/instagram-media/insights
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from igrelay.sandbox import errors
from igrelay.sandbox.data import Media
from igrelay.sandbox.errors import GraphErrorReply

# The live API's list, in its order; "(#100) metric[N] must be one of ..." prints it (minus withdrawn ones).
KNOWN = [
    "impressions",
    "reach",
    "replies",
    "saved",
    "likes",
    "comments",
    "shares",
    "total_interactions",
    "follows",
    "profile_visits",
    "profile_activity",
    "navigation",
    "ig_reels_video_view_total_time",
    "ig_reels_avg_watch_time",
    "views",
    "reels_skip_rate",
    "reposts",
    "facebook_views",
    "crossposted_views",
    "total_views",
    "total_likes",
    "total_comments",
    "link_clicks",
]
_COMMON = {"views", "reach", "shares", "total_interactions", "reposts", "facebook_views"}
_ACTIVITY = {"follows", "profile_visits", "profile_activity"}
_TOTALS = {"total_views", "total_likes", "total_comments"}
# Metrics by media_product_type (MEDIA-INS); reposts and reels_skip_rate apply to every version Meta serves
# (https://developers.facebook.com/docs/instagram-platform/changelog, 2025-12-03 and 2026-06-22).
BY_PRODUCT = {
    "FEED": _COMMON | _ACTIVITY | _TOTALS | {"likes", "comments", "saved"},
    "REELS": _COMMON
    | _TOTALS
    | {
        "likes",
        "comments",
        "saved",
        "ig_reels_avg_watch_time",
        "ig_reels_video_view_total_time",
        "reels_skip_rate",
        "crossposted_views",
    },
    "STORY": _COMMON | _ACTIVITY | {"navigation", "replies", "link_clicks", "total_views"},
}
# Only with Facebook Login (graph.facebook.com); graph.instagram.com refuses them (changelog 2026-06-22, MEDIA-INS).
FACEBOOK_LOGIN_ONLY = _TOTALS | {"link_clicks"}
BREAKDOWNS = {  # breakdown -> (the one metric it goes with, dimension values)
    "action_type": ("profile_activity", ["BIO_LINK_CLICKED", "CALL", "DIRECTION", "EMAIL", "OTHER", "TEXT"]),
    "story_navigation_action_type": ("navigation", ["tap_forward", "tap_back", "tap_exit", "swipe_forward"]),
}
_RANGES = {  # metric -> (low, high) of its value once the media has been out a few days
    "views": (500, 5000),
    "likes": (20, 400),
    "comments": (1, 40),
    "saved": (1, 60),
    "shares": (1, 50),
    "reposts": (0, 15),
    "follows": (0, 20),
    "profile_visits": (5, 120),
    "profile_activity": (2, 60),
    "navigation": (20, 400),
    "replies": (0, 20),
    "link_clicks": (0, 30),
    "facebook_views": (10, 500),
    "crossposted_views": (10, 500),
}
TITLES = {  # metric -> the title Meta shows with it
    "views": "Views",
    "reach": "Accounts reached",
    "likes": "Likes",
    "comments": "Comments",
    "saved": "Saved",
    "shares": "Shares",
    "total_interactions": "Post interactions",
    "reposts": "Reposts",
    "follows": "Follows",
    "profile_visits": "Profile visits",
    "profile_activity": "Profile activity",
    "navigation": "Navigation",
    "replies": "Replies",
    "link_clicks": "Link clicks",
    "facebook_views": "Facebook views",
    "crossposted_views": "Cross-posted views",
    "ig_reels_avg_watch_time": "Average watch time",
    "ig_reels_video_view_total_time": "Watch time",
    "reels_skip_rate": "Skip rate",
    "total_views": "Total views",
    "total_likes": "Total likes",
    "total_comments": "Total comments",
}
STORY_LIFETIME = timedelta(hours=24)
VIEWER_RAMP = timedelta(hours=2)  # a story reaches its viewers over its first two hours
_STYLE_WEIGHTS = [("single", 4), ("multi", 3), ("media_type", 2), ("anonymous", 1)]  # "mixed", out of 10


def check_metrics(
    media: Media, metrics: list[str], withdrawn: Collection[str], login_type: str = "instagram", style: str = "mixed"
) -> None:
    """Raise Meta's code-100 error if any metric is unknown or does not suit this media (one fails them all)."""
    known = [m for m in KNOWN if m not in withdrawn]
    for index, name in enumerate(metrics):
        if name not in known:
            raise errors.must_be_one_of("metric", index, known)
    if "impressions" in metrics and media.media_type != "VIDEO":  # [V22] community-observed wording
        raise GraphErrorReply(
            100,
            "(#100) Starting from version v22.0 and above, the impressions metric is "
            "no longer supported for the queried media",
        )
    refused = [name for name in metrics if not supports(media, name, login_type)]
    if refused:
        raise errors.unsupported_metrics(refused, refusal_style(style, media, metrics))
    for name in metrics:
        if name in ("facebook_views", "crossposted_views") and not media.shared_to_facebook:
            # MEDIA-INS: "error if the media is not shared to Facebook"; exact wording [UNCERTAIN]
            raise GraphErrorReply(100, f"(#100) The {name} metric is only available for media shared to Facebook")


def supports(media: Media, name: str, login_type: str) -> bool:
    """Whether Meta answers metric ``name`` for this media under this login type."""
    if login_type == "instagram" and name in FACEBOOK_LOGIN_ONLY:
        return False
    return name in BY_PRODUCT[media.media_product_type]


def refusal_style(style: str, media: Media, metrics: list[str]) -> str:
    """The wording to refuse with: ``style`` itself, or for ``mixed`` one fixed per (media, request)."""
    if style != "mixed":
        return style
    pick = _fraction(media.id, ",".join(metrics), "refusal") * sum(w for _, w in _STYLE_WEIGHTS)
    for name, weight in _STYLE_WEIGHTS:
        pick -= weight
        if pick < 0:
            return name
    return "single"


def check_breakdowns(metrics: list[str], breakdowns: list[str]) -> None:
    """A breakdown goes with one metric only; anything else is Meta's generic unknown error."""
    for index, name in enumerate(breakdowns):
        if name not in BREAKDOWNS:
            raise errors.must_be_one_of("breakdown", index, list(BREAKDOWNS))
        if any(metric != BREAKDOWNS[name][0] for metric in metrics):
            raise errors.unknown_error()  # MEDIA-INS: breakdown on a metric without one


def check_access(media: Media) -> None:
    """Raise for media whose insights Meta refuses whatever the metrics."""
    if media.parent_id:  # MEDIA-INS: no insights for album children; wording [UNCERTAIN]
        raise GraphErrorReply(100, "(#100) Media insights are not supported for children of a carousel album")
    if media.permission_denied:
        raise errors.no_permission()
    if media.pre_conversion:  # community: airbyte #1814
        raise GraphErrorReply(
            100,
            "Invalid parameter",
            subcode=2108006,
            transient=False,
            user_title="Media Posted Before Business Account Conversion",
            user_msg="The media was posted before the most recent time that the user's account "
            "was converted to a business account from a personal account.",
        )


def check_media(media: Media, now: datetime) -> bool:
    """Raise for a story with too few viewers yet; False when the answer is an empty ``data`` (expired story)."""
    if media.media_product_type == "STORY":
        if now - media.timestamp > STORY_LIFETIME:
            return False  # MEDIA-INS: story metrics live 24 h; after that, no data
        if viewers(media, now) < 5:  # MEDIA-INS: "values less than 5 return error code 10"
            raise errors.not_enough_viewers()
    return True


def viewers(media: Media, now: datetime) -> int:
    """A story's viewers so far: growing from 0 to ``story_viewers`` over ``VIEWER_RAMP``."""
    age = max((now - media.timestamp) / VIEWER_RAMP, 0.0)
    return int(media.story_viewers * min(age, 1.0))


def insight_items(
    media: Media, metrics: list[str], breakdowns: list[str], now: datetime, empty: Collection[str] = ()
) -> list[dict[str, Any]]:
    """The ``data`` list for already-checked metrics; names in ``empty`` are left out (no data yet)."""
    items = []
    for name in metrics:
        if name in empty:
            continue
        item = {
            "name": name,
            "period": "lifetime",
            "values": [{"value": value(media, name, now)}],
            "title": TITLES.get(name, name),
            "description": f"{TITLES.get(name, name)} of this media.",
            "id": f"{media.id}/insights/{name}/lifetime",
        }
        if breakdowns:
            item["total_value"] = _broken_down(media, name, breakdowns[0], now)
        items.append(item)
    return items


def value(media: Media, name: str, now: datetime) -> int | float:
    """Deterministic per (media, metric), growing with age toward a plateau, mutually consistent."""
    if name in _TOTALS:  # organic plus ad/boosted engagement, so a little more than the organic count
        return int(value(media, name.removeprefix("total_"), now) * 1.1)
    if media.media_product_type == "STORY" and name in ("reach", "views"):
        seen = viewers(media, now)
        return seen if name == "reach" else int(seen * (1.2 + _fraction(media.id, name)))
    if name == "reach":
        return int(value(media, "views", now) * (0.6 + 0.3 * _fraction(media.id, name)))
    if name == "total_interactions":
        parts = (
            ("likes", "comments", "saved", "shares") if media.media_product_type != "STORY" else ("shares", "replies")
        )
        return sum(int(value(media, part, now)) for part in parts)
    if name == "ig_reels_avg_watch_time":
        return 2000 + int(13000 * _fraction(media.id, name))  # milliseconds, does not grow
    if name == "ig_reels_video_view_total_time":
        return int(value(media, "views", now)) * int(value(media, "ig_reels_avg_watch_time", now))
    if name == "reels_skip_rate":
        return round(10 + 50 * _fraction(media.id, name), 2)  # a percentage, not an int
    low, high = _RANGES.get(name, (0, 100))
    return int((low + (high - low) * _fraction(media.id, name)) * _growth(now - media.timestamp))


def _broken_down(media: Media, name: str, breakdown: str, now: datetime) -> dict[str, Any]:
    """``total_value`` with one breakdown, its results summing to the total (MEDIA-INS response shape)."""
    total = int(value(media, name, now))
    keys = BREAKDOWNS[breakdown][1]
    weights = [_fraction(media.id, f"{name}:{key}") for key in keys]
    shares = [int(total * w / sum(weights)) for w in weights]
    shares[0] += total - sum(shares)
    results = [{"dimension_values": [k], "value": v} for k, v in zip(keys, shares, strict=True) if v]
    return {"value": total, "breakdowns": [{"dimension_keys": [breakdown], "results": results}]}


def _fraction(*parts: str) -> float:
    """A stable number in [0, 1) for the given strings."""
    return int(hashlib.sha256(":".join(parts).encode()).hexdigest()[:8], 16) / 2**32


def _growth(age: timedelta) -> float:
    """0.2 for a brand-new media, rising toward 1.0 over a few days."""
    return 0.2 + 0.8 * (1 - math.exp(-max(age.total_seconds(), 0) / 86400))
