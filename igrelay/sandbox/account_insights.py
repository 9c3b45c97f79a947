"""Account insights the way ``GET /<IG_USER_ID>/insights`` answers them.

https://developers.facebook.com/docs/instagram-platform/api-reference/instagram-user/insights
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from igrelay.sandbox import errors
from igrelay.sandbox.data import Account, meta_time
from igrelay.sandbox.errors import GraphErrorReply

_DAY = 86400
_DAY_ENDS = 8 * 3600  # end_time of a day is 08:00 UTC
MAX_WINDOW = 30 * _DAY  # community: "There cannot be more than 30 days (2592000 s) between since and until"
PERIODS = ["day", "week", "days_28", "month", "lifetime", "total_over_range"]
METRIC_TYPES = ["time_series", "total_value"]
DIMENSIONS = {
    "media_product_type": ["AD", "FEED", "REELS", "STORY"],
    "follow_type": ["FOLLOWER", "NON_FOLLOWER", "UNKNOWN"],
    "follower_type": ["FOLLOWER", "NON_FOLLOWER"],
    "contact_button_type": ["BOOK_NOW", "CALL", "DIRECTION", "EMAIL", "TEXT", "UNDEFINED"],
    "age": ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"],
    "gender": ["F", "M", "U"],
    "country": ["US", "DE", "FR", "BR", "IN"],
    "city": ["London, England", "Berlin, Berlin", "Paris, Ile-de-France", "New York, New York"],
}
_DEMOGRAPHIC = ["age", "city", "country", "gender"]
# metric -> breakdowns it accepts (USER-INS 5.2); metrics not here accept none.
BREAKDOWNS: dict[str, list[str]] = {
    "reach": ["media_product_type", "follow_type"],
    "views": ["follower_type", "media_product_type"],
    "total_interactions": ["media_product_type"],
    "likes": ["media_product_type"],
    "comments": ["media_product_type"],
    "saves": ["media_product_type"],
    "shares": ["media_product_type"],
    "follows_and_unfollows": ["follow_type"],
    "profile_links_taps": ["contact_button_type"],
    "follower_demographics": _DEMOGRAPHIC,
    "engaged_audience_demographics": _DEMOGRAPHIC,
    "reached_audience_demographics": _DEMOGRAPHIC,
}
TIME_SERIES = {"follower_count", "online_followers", "reach"}  # the rest are total_value only (v21+)
NEEDS_100_FOLLOWERS = {"follower_count", "online_followers", "follower_demographics", "follows_and_unfollows"}
KNOWN = [
    "reach",
    "follower_count",
    "website_clicks",
    "profile_views",
    "online_followers",
    "accounts_engaged",
    "total_interactions",
    "likes",
    "comments",
    "shares",
    "saves",
    "replies",
    "engaged_audience_demographics",
    "reached_audience_demographics",
    "follower_demographics",
    "follows_and_unfollows",
    "profile_links_taps",
    "views",
    "reposts",
]  # impressions is gone (v22; all versions Apr 21, 2025), so it gets "must be one of"


def account_insights(
    account: Account, params: Mapping[str, str], now: datetime, withdrawn: Collection[str] = ()
) -> list[dict[str, Any]]:
    """The ``data`` list, or the GraphErrorReply Meta would answer with."""
    metrics, period, metric_type = _metrics(params, withdrawn)
    breakdowns = _csv(params.get("breakdown", ""))
    since, until = _window(params, now)
    _check_breakdowns(metrics, breakdowns, metric_type)
    if account.followers_count < 100:  # USER-INS 5.3: these are simply not returned
        metrics = [m for m in metrics if m not in NEEDS_100_FOLLOWERS]
    base = {"account": account.id, "period": period}
    series = {"follower_count", "online_followers"} | ({"reach"} if metric_type == "time_series" else set())
    return [
        _time_series(m, base, since, until) if m in series else _total(m, base, since, until, breakdowns)
        for m in metrics
    ]


def _metrics(params: Mapping[str, str], withdrawn: Collection[str]) -> tuple[list[str], str, str]:
    """Validated metric names, period and metric_type."""
    metrics = _csv(params.get("metric", ""))
    if not metrics:
        raise errors.param_required("metric")
    if "period" not in params:
        raise errors.param_required("period")
    period, metric_type = params["period"], params.get("metric_type", "time_series")
    if period not in PERIODS:
        raise errors.must_be_one_of("period", 0, PERIODS)
    if metric_type not in METRIC_TYPES:
        raise errors.must_be_one_of("metric_type", 0, METRIC_TYPES)
    known = [m for m in KNOWN if m not in withdrawn]
    for index, name in enumerate(metrics):
        if name not in known:
            raise errors.must_be_one_of("metric", index, known)
    total_only = [m for m in metrics if m not in TIME_SERIES]
    if metric_type == "time_series" and total_only:
        raise GraphErrorReply(
            100,
            f"(#100) The following metrics ({', '.join(total_only)}) should be specified "
            "with parameter metric_type=total_value",
        )
    return metrics, period, metric_type


def _window(params: Mapping[str, str], now: datetime) -> tuple[int, int]:
    """``since``/``until`` in Unix seconds; 24 h back by default, at most 30 days apart."""
    try:
        until = int(params.get("until", now.timestamp()))
        since = int(params.get("since", until - _DAY))
    except ValueError as exc:
        raise GraphErrorReply(100, "(#100) since and until must be Unix timestamps") from exc
    if until - since > MAX_WINDOW:
        raise GraphErrorReply(100, "(#100) There cannot be more than 30 days (2592000 s) between since and until")
    if since > until:
        raise GraphErrorReply(100, "(#100) since must be before until")
    return since, until


def _check_breakdowns(metrics: list[str], breakdowns: list[str], metric_type: str) -> None:
    """Breakdowns need total_value and must suit every requested metric; wording [UNCERTAIN]."""
    if breakdowns and metric_type != "total_value":
        raise GraphErrorReply(100, "(#100) breakdown is only supported with metric_type=total_value")
    for name in breakdowns:
        for metric in metrics:
            if name not in BREAKDOWNS.get(metric, []):
                raise GraphErrorReply(100, f"(#100) Incompatible breakdown {name} for metric {metric}")


def _time_series(name: str, base: dict[str, str], since: int, until: int) -> dict[str, Any]:
    """One value per day in the window; ``follower_count`` is new followers per day, not a total."""
    first_end = since - (since - _DAY_ENDS) % _DAY + _DAY  # days end at Pacific midnight, as Meta's do
    ends = range(first_end, max(until, first_end) + 1, _DAY)
    values = [{"value": _series_value(base["account"], name, end), "end_time": meta_time(_utc(end))} for end in ends]
    return {
        "name": name,
        "period": base["period"],
        "values": values,
        "title": _title(name),
        "description": _title(name),
        "id": f"{base['account']}/insights/{name}/{base['period']}",
    }


def _total(name: str, base: dict[str, str], since: int, until: int, breakdowns: list[str]) -> dict[str, Any]:
    """The total over the window, optionally split by the first breakdown."""
    days = range(since, max(until, since + 1), _DAY)
    total: dict[str, Any] = {"value": sum(_daily(base["account"], name, day) for day in days)}
    if breakdowns:
        keys = DIMENSIONS[breakdowns[0]]
        results = [{"dimension_values": [k], "value": _daily(base["account"], f"{name}:{k}", since)} for k in keys]
        total["value"] = sum(r["value"] for r in results)
        total["breakdowns"] = [{"dimension_keys": [breakdowns[0]], "results": results}]
    return {
        "name": name,
        "period": base["period"],
        "title": _title(name),
        "description": _title(name),
        "total_value": total,
        "id": f"{base['account']}/insights/{name}/{base['period']}",
    }


def _series_value(account_id: str, name: str, day: int) -> int | dict[str, int]:
    """A day's value; ``online_followers`` maps each hour of the day to a count."""
    if name == "online_followers":
        return {str(hour): _daily(account_id, f"{name}:{hour}", day) for hour in range(24)}
    return _daily(account_id, name, day)


def _daily(account_id: str, name: str, day: int) -> int:
    """A stable daily value in 0..499 for (account, metric, day)."""
    digest = hashlib.sha256(f"{account_id}:{name}:{day // _DAY}".encode()).hexdigest()
    return int(digest[:8], 16) % 500


def _title(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
