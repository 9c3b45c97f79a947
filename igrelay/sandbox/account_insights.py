"""Account insights the way ``GET /<IG_USER_ID>/insights`` answers them.

https://developers.facebook.com/docs/instagram-platform/api-reference/instagram-user/insights
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from igrelay.sandbox import errors
from igrelay.sandbox.data import Account, meta_time
from igrelay.sandbox.errors import GraphErrorReply

_DAY = 86400
# period=day buckets end at Pacific midnight, so end_time is 07:00 or 08:00 UTC with daylight saving
# (https://github.com/airbytehq/airbyte/pull/74006, https://github.com/sns-sdks/python-facebook/issues/55).
PACIFIC = ZoneInfo("America/Los_Angeles")
MAX_WINDOW = 30 * _DAY  # community: "There cannot be more than 30 days (2592000 s) between since and until"
PERIODS = ["day", "week", "days_28", "month", "lifetime", "total_over_range"]
METRIC_TYPES = ["time_series", "total_value"]
DIMENSIONS = {
    "media_product_type": ["POST", "REEL", "STORY", "AD", "CAROUSEL_CONTAINER"],
    "follow_type": ["FOLLOWER", "NON_FOLLOWER", "UNKNOWN"],
    "follower_type": ["FOLLOWER", "NON_FOLLOWER"],
    "contact_button_type": ["BOOK_NOW", "CALL", "DIRECTION", "EMAIL", "INSTANT_EXPERIENCE", "TEXT", "UNDEFINED"],
    "age": ["13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"],
    "gender": ["F", "M", "U"],
    "country": ["US", "DE", "FR", "BR", "IN", "GB", "IT"],
    "city": ["London, England", "Berlin, Berlin", "Paris, Ile-de-France", "New York, New York", "Sao Paulo, Sao Paulo"],
}
_METRIC_DIMENSIONS = {("follows_and_unfollows", "follow_type"): ["FOLLOWER", "NON_FOLLOWER"]}
TOP_SEGMENTS = 45  # USER-INS: demographics return the top 45 segments only
TIMEFRAMES = ["this_week", "this_month"]  # USER-INS: the others are unsupported from v20.0
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
DEMOGRAPHICS = {"follower_demographics", "engaged_audience_demographics", "reached_audience_demographics"}
LIFETIME = DEMOGRAPHICS | {"online_followers"}  # every other metric wants period=day
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
    # time_series has no breakdowns: Meta leaves them out rather than refusing
    breakdowns = _csv(params.get("breakdown", "")) if metric_type == "total_value" else []
    since, until = _window(params, now)
    _check_breakdowns(metrics, breakdowns)
    _check_timeframe(metrics, params)
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
    _check_period(metrics, period)
    total_only = [m for m in metrics if m not in TIME_SERIES]
    if metric_type == "time_series" and total_only:
        raise GraphErrorReply(
            100,
            f"(#100) The following metrics ({', '.join(total_only)}) should be specified "
            "with parameter metric_type=total_value",
        )
    return metrics, period, metric_type


def _check_period(metrics: list[str], period: str) -> None:
    """Demographics and online_followers want period=lifetime, the rest period=day (USER-INS)."""
    for wanted in ("lifetime", "day"):
        wrong = [m for m in metrics if (m in LIFETIME) == (wanted == "lifetime") and period != wanted]
        if wrong:
            raise GraphErrorReply(
                100,
                f"(#100) The following metrics ({', '.join(wrong)}) should be specified with parameter period={wanted}",
            )


def _check_timeframe(metrics: list[str], params: Mapping[str, str]) -> None:
    """Demographics need ``timeframe`` (USER-INS), one of the values still supported."""
    if not DEMOGRAPHICS.intersection(metrics):
        return
    if "timeframe" not in params:
        raise errors.param_required("timeframe")
    if params["timeframe"] not in TIMEFRAMES:
        raise errors.must_be_one_of("timeframe", 0, TIMEFRAMES)


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


def _check_breakdowns(metrics: list[str], breakdowns: list[str]) -> None:
    """A breakdown must suit every requested metric; Meta answers anything else with its unknown error."""
    # https://developers.facebook.com/docs/instagram-platform/api-reference/instagram-user/insights
    for name in breakdowns:
        if any(name not in BREAKDOWNS.get(metric, []) for metric in metrics):
            raise errors.unknown_error()


def day_ends(since: int, until: int) -> list[datetime]:
    """The end_time of each Pacific day ending in (since, until]; at least one."""
    day = datetime.fromtimestamp(since, PACIFIC).date()
    ends: list[datetime] = []
    while True:
        end = _pacific_midnight(day + timedelta(days=1))
        if end.timestamp() > until and ends:
            return ends
        if end.timestamp() > since:
            ends.append(end)
        day += timedelta(days=1)


def _pacific_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=PACIFIC).astimezone(UTC)


def _time_series(name: str, base: dict[str, str], since: int, until: int) -> dict[str, Any]:
    """One value per day in the window; ``follower_count`` is new followers per day, not a total."""
    values = [
        {"value": _series_value(base["account"], name, _day_of(end)), "end_time": meta_time(end)}
        for end in day_ends(since, until)
    ]
    return {
        "name": name,
        "period": base["period"],
        "values": values,
        "title": _title(name),
        "description": _title(name),
        "id": f"{base['account']}/insights/{name}/{base['period']}",
    }


def _total(name: str, base: dict[str, str], since: int, until: int, breakdowns: list[str]) -> dict[str, Any]:
    """The total over the window's Pacific days, optionally split by the breakdowns."""
    days = [_day_of(end) for end in day_ends(since, until)]
    total: dict[str, Any] = {"value": sum(_daily(base["account"], name, day) for day in days)}
    if breakdowns:
        total = _broken_down(base["account"], name, breakdowns, days[0])
    return {
        "name": name,
        "period": base["period"],
        "title": _title(name),
        "description": _title(name),
        "total_value": total,
        "id": f"{base['account']}/insights/{name}/{base['period']}",
    }


def _broken_down(account_id: str, name: str, breakdowns: list[str], day: str) -> dict[str, Any]:
    """Meta's total_value with breakdowns: one result per combination of dimension values."""
    axes = [_METRIC_DIMENSIONS.get((name, b), DIMENSIONS[b]) for b in breakdowns]
    results = [
        {"dimension_values": list(combo), "value": _daily(account_id, f"{name}:{':'.join(combo)}", day)}
        for combo in itertools.product(*axes)
    ]
    if name in DEMOGRAPHICS:  # only the top segments, and no overall value
        results = sorted(results, key=lambda r: -r["value"])[:TOP_SEGMENTS]
        return {"breakdowns": [{"dimension_keys": breakdowns, "results": results}]}
    total = sum(r["value"] for r in results)
    return {"value": total, "breakdowns": [{"dimension_keys": breakdowns, "results": results}]}


def _series_value(account_id: str, name: str, day: str) -> int | dict[str, int]:
    """A day's value; ``online_followers`` maps each hour of the day to a count."""
    if name == "online_followers":
        return {str(hour): _daily(account_id, f"{name}:{hour}", day) for hour in range(24)}
    return _daily(account_id, name, day)


def _daily(account_id: str, name: str, day: str) -> int:
    """A stable daily value in 0..499 for (account, metric, Pacific day)."""
    digest = hashlib.sha256(f"{account_id}:{name}:{day}".encode()).hexdigest()
    return int(digest[:8], 16) % 500


def _day_of(end: datetime) -> str:
    """The Pacific date of the day ending at ``end``."""
    return (end.astimezone(PACIFIC) - timedelta(hours=1)).date().isoformat()


def _title(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
