"""Graph API requests and answers without I/O: what to ask for, what came back, what went wrong.

Exceptions, each mapped to a policy in ``workers.fetch``::

    GraphError                 an answer we cannot use (a bug, or a request Meta refuses): log, count
     ├── TransientError        5xx, timeouts, ``is_transient``, codes 1 and 2: re-request with backoff
     ├── ThrottledError        4 (app), 17 (user), 32, 613, 80000-80014 (account): pause ``scope`` ``retry_after`` s
     ├── AuthError             190 (any subcode), 200-299 permissions: account needs reconnection
     ├── TerminalError         100/33 gone (once repeated), 2108006 pre-conversion, other code 10: ``reason``
     ├── TooFewViewers         "(#10) Not enough viewers": a young story; ask again on the story's schedule
     └── MetricRejected        code 100 refusing metrics: ``metrics`` named, or none (find them by halves)

Texts are Meta's messages; callers pass them through ``config.logs.redact`` before they are kept.
https://developers.facebook.com/docs/graph-api/guides/error-handling
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

NODE_FIELDS = ("id", "media_type", "media_product_type", "permalink", "timestamp")  # of a media node
NO_DATA = "no_data"
UNSUPPORTED = "unsupported"
# https://developers.facebook.com/docs/graph-api/overview/rate-limiting
THROTTLE_CODES = frozenset({4, 17, 32, 613}) | frozenset(range(80000, 80015))
THROTTLE_SCOPES = {4: "app", 17: "user"}  # app-wide and per-user limits; the others limit one account or Page
PACE_FROM = 80  # a usage header at or above this percentage slows the calls down before Meta throttles
DEFAULT_THROTTLE_SECONDS = 300
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # Meta's node timestamps: 2026-11-20T10:00:00+0000
# Code-100 wordings that name the refused metrics: "does not support the X metric" and "... the X, Y
# metric" (https://www.volcengine.com/article/1139570), "The metric X is not supported for this media
# type" (https://github.com/exileum/meta-mcp/issues/120), "the X metric is no longer supported",
# "the X metric is only available ...".
_METRIC_NAMED = [
    re.compile(r"does not support the ([\w, ]+?) metrics? for"),
    re.compile(r"does not support the ([\w, ]+?) metrics?\b"),
    re.compile(r"[Tt]he metrics? ([\w, ]+?) (?:is|are) not supported"),
    re.compile(r"[Tt]he ([\w, ]+?) metrics? (?:is|are) no longer supported"),
    re.compile(r"[Tt]he ([\w, ]+?) metrics? (?:is|are) only available"),
]
_MUST_BE_ONE_OF = re.compile(r"metric\[(\d+)\] must be one of the following values: ([\w, ]+)")


class GraphError(Exception):
    """An unusable Graph answer; ``code``/``subcode``/``status`` as Meta sent them."""

    def __init__(self, message: str, code: int | None = None, subcode: int | None = None, status: int = 0) -> None:
        super().__init__(message)
        self.code, self.subcode, self.status = code, subcode, status


class TransientError(GraphError):
    """Retry later with backoff."""


class ThrottledError(GraphError):
    """A rate limit; ``retry_after`` is Meta's estimate in seconds, ``scope`` is app, user or account."""

    retry_after: int = DEFAULT_THROTTLE_SECONDS
    scope: str = "account"


class AuthError(GraphError):
    """The token is invalid or lacks a permission; only a reconnection helps."""


class TerminalError(GraphError):
    """No insights will ever come for this media; ``reason`` says why."""

    reason: str = "unavailable"


class TooFewViewers(GraphError):
    """A story with under 5 viewers so far: no insights yet, more as viewers come."""

    reason: str = "not_enough_viewers"


class MetricRejected(GraphError):
    """Meta refused metrics for this media: ``metrics`` are the requested ones it named (none: unattributed)."""

    metrics: tuple[str, ...] = ()


def parse_timestamp(raw: Any) -> datetime | None:
    """Meta's ``2026-11-20T10:00:00+0000`` as an aware datetime (None when absent or not that shape)."""
    try:
        return datetime.strptime(str(raw), TIMESTAMP_FORMAT) if raw else None
    except ValueError:
        return None


def epoch(raw: Any) -> float | None:
    """Epoch seconds from Meta's node timestamp (None when absent or not that shape)."""
    when = parse_timestamp(raw)
    return when.timestamp() if when else None


def media_params(metrics: Sequence[str]) -> dict[str, str]:
    """Media metadata and insights in one call, by field expansion."""
    fields = ",".join(NODE_FIELDS)
    if metrics:
        # https://developers.facebook.com/docs/graph-api/guides/field-expansion
        fields += f",insights.metric({','.join(metrics)})"
    return {"fields": fields}


def listing_params(limit: int = 50, after: str | None = None) -> dict[str, str]:
    """One page of ``/{account}/media`` or ``/{account}/stories``, newest first."""
    params = {"fields": ",".join(NODE_FIELDS), "limit": str(limit)}
    if after:
        params["after"] = after
    return params


def account_params(metrics: Sequence[str], since: int, until: int) -> dict[str, str]:
    """Daily account totals; the window may not exceed 30 days."""
    # https://developers.facebook.com/docs/instagram-platform/api-reference/instagram-user/insights
    if until - since > 30 * 86400:
        raise ValueError("account insights window longer than 30 days")
    return {
        "metric": ",".join(metrics),
        "period": "day",
        "metric_type": "total_value",
        "since": str(since),
        "until": str(until),
    }


def insight_value(item: Mapping[str, Any]) -> float | None:
    """``values[0].value`` (media shape), falling back to ``total_value.value`` (account shape)."""
    values = item.get("values")
    if isinstance(values, list) and values and isinstance(values[0], dict):
        value = values[0].get("value")
    else:
        value = (item.get("total_value") or {}).get("value")
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_insights(data: Any, requested: Sequence[str]) -> tuple[dict[str, float], dict[str, str]]:
    """Metrics with a value, and the requested ones without (empty ``data`` = unavailable, never 0)."""
    metrics: dict[str, float] = {}
    for item in data if isinstance(data, list) else []:
        value = insight_value(item) if isinstance(item, dict) else None
        # https://developers.facebook.com/documentation/instagram-platform/reference/instagram-media/insights
        if value is not None and item.get("name") in requested:
            metrics[item["name"]] = value
    return metrics, {name: NO_DATA for name in requested if name not in metrics}


def parse_media(
    body: Mapping[str, Any], requested: Sequence[str]
) -> tuple[dict[str, Any], dict[str, float], dict[str, str]]:
    """The media node (no insights), its metrics and the unavailable ones."""
    node = {k: body.get(k) for k in NODE_FIELDS if body.get(k) is not None}
    metrics, unavailable = parse_insights((body.get("insights") or {}).get("data"), requested)
    return node, metrics, unavailable


def parse_listing(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """The page's media nodes and the ``after`` cursor when there is a next page."""
    paging = body.get("paging") or {}
    after = (paging.get("cursors") or {}).get("after") if paging.get("next") else None
    return [m for m in body.get("data") or [] if isinstance(m, dict) and m.get("id")], after


def regain_seconds(headers: Mapping[str, str]) -> int:
    """The longest ``estimated_time_to_regain_access`` (minutes) in the usage headers, in seconds."""
    minutes = 0.0
    # https://developers.facebook.com/docs/graph-api/overview/rate-limiting
    for name in ("X-Business-Use-Case-Usage", "X-App-Usage"):
        minutes = max(minutes, *_regain_minutes(_json(headers.get(name))), 0)
    return int(minutes * 60)


def usage_percent(headers: Mapping[str, str]) -> tuple[float, float]:
    """The highest percentage in ``X-App-Usage`` and in ``X-Business-Use-Case-Usage`` (the call's own assets)."""
    # https://developers.facebook.com/docs/graph-api/overview/rate-limiting
    app = _json(headers.get("X-App-Usage"))
    business = _json(headers.get("X-Business-Use-Case-Usage"))
    entries = [e for v in business.values() if isinstance(v, list) for e in v] if isinstance(business, dict) else []
    return _highest(app), max((_highest(e) for e in entries), default=0.0)


def _highest(usage: Any) -> float:
    if not isinstance(usage, dict):
        return 0.0
    values = [usage.get(k) for k in ("call_count", "total_cputime", "total_time")]
    return float(max((v for v in values if isinstance(v, (int, float))), default=0))


def pace_seconds(percent: float) -> int:
    """How long to hold calls back at ``percent`` usage: none below ``PACE_FROM``, 1 min there, 15 min at 100."""
    if percent < PACE_FROM:
        return 0
    return int(60 + (min(percent, 100) - PACE_FROM) * 840 / (100 - PACE_FROM))


def _regain_minutes(usage: Any) -> list[float]:
    """Every ``estimated_time_to_regain_access`` in a usage header, however nested."""
    if isinstance(usage, dict):
        regain = usage.get("estimated_time_to_regain_access")
        found = [float(regain)] if isinstance(regain, (int, float)) else []
        return found + [m for v in usage.values() for m in _regain_minutes(v)]
    if isinstance(usage, list):
        return [m for v in usage for m in _regain_minutes(v)]
    return []


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def classify(status: int, body: Any, headers: Mapping[str, str], requested: Sequence[str] = ()) -> GraphError:
    """The exception for an error answer (HTTP ``status``, decoded ``body``, response ``headers``)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        cls = TransientError if status >= 500 or status == 429 else GraphError
        return cls(f"HTTP {status} without a Graph error body", status=status)
    code, sub = _int(error.get("code")), _int(error.get("error_subcode"))
    message = str(error.get("message") or "")
    text = f"Graph error {code}" + (f"/{sub}" if sub else "") + f": {message}"
    cls = _error_class(code, sub, message, error.get("is_transient") is True, status, requested)
    exc = cls(text, code, sub, status)
    if isinstance(exc, ThrottledError):
        exc.retry_after = regain_seconds(headers) or DEFAULT_THROTTLE_SECONDS
        exc.scope = THROTTLE_SCOPES.get(code or 0, "account")
    elif isinstance(exc, TerminalError):
        exc.reason = _terminal_reason(code, sub)
    elif isinstance(exc, MetricRejected):
        exc.metrics = rejected_metrics(message, requested)
    return exc


def _error_class(
    code: int | None, sub: int | None, message: str, transient: bool, status: int, requested: Sequence[str] = ()
) -> type[GraphError]:
    """Meta's error codes to classes; throttles first, since Meta marks them transient too.

    https://developers.facebook.com/docs/graph-api/guides/error-handling
    """
    if code in THROTTLE_CODES:
        return ThrottledError
    if code == 10:  # a story under 5 viewers (MEDIA-INS), or this one media refused to this app
        # https://github.com/airbytehq/airbyte/pull/32245 skips the latter per media
        return TooFewViewers if "not enough viewers" in message.lower() else TerminalError
    if code == 190 or (code is not None and 200 <= code <= 299):
        return AuthError
    if code == 100 and sub in (33, 2108006):
        return TerminalError
    if code == 100 and requested and (sub is None or rejected_metrics(message, requested)):
        return MetricRejected  # named, or to be found by asking in halves
    if code in (1, 2) or transient or status >= 500:
        return TransientError
    return GraphError


def _terminal_reason(code: int | None, sub: int | None) -> str:
    if sub == 2108006:
        return "pre_conversion"
    if sub == 33:
        return "gone"
    return "no_permission"


def rejected_metrics(message: str, requested: Sequence[str]) -> tuple[str, ...]:
    """The ones of ``requested`` a code-100 message refuses (empty when it names none of them)."""
    for pattern in _METRIC_NAMED:
        match = pattern.search(message)
        if match:
            named = {n.strip() for n in match.group(1).split(",")}
            found = tuple(m for m in requested if m in named)
            if found:
                return found
    match = _MUST_BE_ONE_OF.search(message)
    if not match:
        return ()
    allowed = {m.strip() for m in match.group(2).split(",")}
    outside = tuple(m for m in requested if m not in allowed)
    if outside:
        return outside
    index = int(match.group(1))
    return (requested[index],) if index < len(requested) else ()


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
