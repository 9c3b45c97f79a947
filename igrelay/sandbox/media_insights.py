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
# Metrics by media_product_type; total_* need Facebook Login, which the sandbox does not imitate.
BY_PRODUCT = {
    "FEED": _COMMON | _ACTIVITY | {"likes", "comments", "saved"},
    "REELS": _COMMON
    | {
        "likes",
        "comments",
        "saved",
        "ig_reels_avg_watch_time",
        "ig_reels_video_view_total_time",
        "reels_skip_rate",
        "crossposted_views",
    },
    "STORY": _COMMON | _ACTIVITY | {"navigation", "replies", "link_clicks"},
}
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
}
STORY_LIFETIME = timedelta(hours=24)


def check_metrics(media: Media, metrics: list[str], withdrawn: Collection[str]) -> None:
    """Raise Meta's code-100 error for the first metric this media cannot answer (one fails them all)."""
    known = [m for m in KNOWN if m not in withdrawn]
    for index, name in enumerate(metrics):
        if name not in known:
            raise errors.must_be_one_of("metric", index, known)
        if name == "impressions" and media.media_type != "VIDEO":  # [V22] community-observed wording
            raise GraphErrorReply(
                100,
                "(#100) Starting from version v22.0 and above, the impressions metric is "
                "no longer supported for the queried media",
            )
        if name not in BY_PRODUCT[media.media_product_type]:
            raise GraphErrorReply(
                100, f"(#100) The Media Insights API does not support the {name} metric for this media product type"
            )
        if name in ("facebook_views", "crossposted_views") and not media.shared_to_facebook:
            # MEDIA-INS: "error if the media is not shared to Facebook"; exact wording [UNCERTAIN]
            raise GraphErrorReply(100, f"(#100) The {name} metric is only available for media shared to Facebook")


def check_breakdowns(metrics: list[str], breakdowns: list[str]) -> None:
    """A breakdown goes with one metric only; anything else is Meta's generic unknown error."""
    for index, name in enumerate(breakdowns):
        if name not in BREAKDOWNS:
            raise errors.must_be_one_of("breakdown", index, list(BREAKDOWNS))
        if any(metric != BREAKDOWNS[name][0] for metric in metrics):
            raise errors.unknown_error()  # MEDIA-INS: breakdown on a metric without one


def check_media(media: Media, now: datetime) -> bool:
    """Raise for media without insights; False when the answer is an empty ``data`` (expired story)."""
    if media.parent_id:  # MEDIA-INS: no insights for album children; wording [UNCERTAIN]
        raise GraphErrorReply(100, "(#100) Media insights are not supported for children of a carousel album")
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
    if media.media_product_type == "STORY":
        if now - media.timestamp > STORY_LIFETIME:
            return False  # MEDIA-INS: story metrics live 24 h; after that, no data
        if media.story_viewers < 5:  # MEDIA-INS: "a story metric under 5" fails with code 10
            raise GraphErrorReply(10, "(#10) Not enough viewers for the media to show insights")
    return True


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
