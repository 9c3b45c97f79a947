"""Records, the one shape every sink receives, built in one place.

A record's ``id`` is a hash of what it states (kind, account, subject and payload), never of
when it was made, so the same fact delivered twice, or re-made by a retried job, has the same
id and keyed sinks store it once.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from config.settings import Settings
from workers import breakdowns, graph, metric_registry
from workers.breakdowns import Breakdowns
from workers.changes import Change
from workers.sinks import Record

# story_insights webhook: "-1" stands for a count below 5.
# https://developers.facebook.com/docs/instagram-platform/webhooks
FEWER_THAN_5 = "fewer_than_5"
# The story_insights webhook still sends the names the API retired: impressions became views
# (https://developers.facebook.com/docs/graph-api/changelog/version22.0) and taps_forward,
# taps_back and exits became navigation by story_navigation_action_type
# (https://developers.facebook.com/docs/graph-api/changelog/version18.0). Records use the API's names.
WEBHOOK_STORY_NAMES = {"impressions": "views"}
WEBHOOK_NAVIGATION = {"taps_forward": "tap_forward", "taps_back": "tap_back", "exits": "tap_exit"}
NAVIGATION_BREAKDOWN = "story_navigation_action_type"


def now_iso() -> str:
    """ISO-8601 UTC, seconds precision, ``Z`` suffix."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def record_id(kind: str, *parts: Any) -> str:
    """Stable idempotency key from the record's kind and content."""
    blob = json.dumps([kind, *parts], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def webhook_event(change: Change, captured_at: str | None = None) -> Record:
    """A ``webhook_event`` record for any known change (any change of a "Test" delivery too)."""
    event = normalize_event(change)
    record: Record = {
        "kind": "webhook_event",
        "id": record_id("webhook_event", change.key),
        "account_id": change.account_id,
        "captured_at": captured_at or now_iso(),
        "trigger": change.field,
        "event": event,
    }
    if change.media_id:
        record["media_id"] = change.media_id
    return record


def normalize_event(change: Change) -> dict[str, Any]:
    """The change in the documented ``event`` shape (README, "Records"), across comment and messaging shapes."""
    event: dict[str, Any] = {"field": change.field}
    if change.time is not None:
        event["time"] = datetime.fromtimestamp(change.time, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if change.test:
        event["test"] = True
    if change.field in ("comments", "live_comments", "mentions"):
        _comment_event(event, change)
    elif change.field == "story_insights":
        _put(event, "media_id", change.media_id)
        event["metrics"] = _plain({k: x for k, x in change.value.items() if k != "media_id"})
    else:
        _messaging_event(event, change.value)
    return event


def _comment_event(event: dict[str, Any], change: Change) -> None:
    v = change.value
    media = _dict(v.get("media"))
    _put(event, "comment_id", v.get("id") or v.get("comment_id"))
    _put(event, "parent_id", v.get("parent_id"))
    _put(event, "media_id", change.media_id)
    _put(event, "media_product_type", media.get("media_product_type"))
    for ad_field in ("ad_id", "ad_title", "original_media_id"):  # comments on an ad
        _put(event, ad_field, media.get(ad_field))
    _put(event, "text", v.get("text"))
    _put(event, "from", _author(v.get("from")))
    if change.field == "mentions":
        event["mention"] = True


# Objects of a messaging item kept as Meta sends them (scalars, one nested level).
# https://developers.facebook.com/docs/instagram-platform/webhooks/examples
MESSAGING_OBJECTS = (
    "reaction",
    "postback",
    "referral",
    "optin",
    "pass_thread_control",
    "take_thread_control",
    "request_thread_control",
    "policy_enforcement",
    "response_feedback",
)


def _messaging_event(event: dict[str, Any], v: Mapping[str, Any]) -> None:
    message = _dict(v.get("message"))
    edit = _dict(v.get("message_edit"))
    mid = message.get("mid") or edit.get("mid") or _nested(v, "reaction", "mid") or _nested(v, "read", "mid")
    _put(event, "message_id", mid)
    _put(event, "text", message.get("text") or edit.get("text"))
    _put(event, "num_edit", edit.get("num_edit"))
    _put(event, "from", _author(v.get("sender")))
    _put(event, "to", _author(v.get("recipient")))
    for flag in ("is_echo", "is_deleted", "is_self", "is_unsupported"):
        if message.get(flag) is True or v.get(flag) is True:
            event[flag] = True
    attachments = [_attachment(a) for a in message.get("attachments") or [] if isinstance(a, dict)]
    _put(event, "attachments", attachments)
    for inner in ("quick_reply", "reply_to", "referral"):
        _put(event, inner, _plain(_dict(message.get(inner))))
    for name in MESSAGING_OBJECTS:
        _put(event, name, _plain(_dict(v.get(name))))


def story_insights_from_webhook(change: Change, captured_at: str | None = None) -> Record:
    """A ``story_insights`` record from the payload, in the API's names; ``-1`` becomes "fewer than 5"."""
    metrics: dict[str, float] = {}
    unavailable: dict[str, str] = {}
    navigation: dict[str, float] = {}
    raw = {k: v for k, v in change.value.items() if k != "media_id" and breakdowns.number(v)}
    for name, value in raw.items():
        step = WEBHOOK_NAVIGATION.get(name)
        target = f"navigation.{step}" if step else WEBHOOK_STORY_NAMES.get(name, name)
        if value == -1:
            unavailable[target] = FEWER_THAN_5
        elif step:
            navigation[step] = value
        else:
            metrics[target] = value
    found = {"navigation": {NAVIGATION_BREAKDOWN: navigation}} if navigation else {}
    media_id = str(change.value.get("media_id", ""))
    record: Record = {
        "kind": "story_insights",
        "id": record_id("story_insights", change.account_id, media_id, metrics, unavailable, *_opt(found)),
        "account_id": change.account_id,
        "captured_at": captured_at or now_iso(),
        "trigger": "story_insights",
        "media_id": media_id,
        "media_type": None,
        "media_product_type": "STORY",
        "permalink": None,
        "media_timestamp": None,
        "metrics": metrics,
        "unavailable": unavailable,
    }
    if found:
        record["breakdowns"] = found
    record["webhook_metrics"] = raw
    return record


def media_insights(
    account_id: str,
    media: Mapping[str, Any],
    metrics: Mapping[str, float],
    unavailable: Mapping[str, str],
    trigger: str,
    captured_at: str | None = None,
    breakdowns: Breakdowns | None = None,
) -> Record:
    """A ``media_insights`` record (or ``story_insights`` for a story) from a Graph fetch.

    ``media`` holds the Graph media node: id, media_type, media_product_type, permalink, timestamp.
    """
    kind = "story_insights" if media.get("media_product_type") == "STORY" else "media_insights"
    media_id = str(media["id"])
    record: Record = {
        "kind": kind,
        "id": record_id(kind, account_id, media_id, dict(metrics), dict(unavailable), *_opt(breakdowns)),
        "account_id": account_id,
        "captured_at": captured_at or now_iso(),
        "trigger": trigger,
        "media_id": media_id,
        "media_type": media.get("media_type"),
        "media_product_type": media.get("media_product_type"),
        "permalink": media.get("permalink"),
        "media_timestamp": _iso(media.get("timestamp")),
        "metrics": dict(metrics),
        "unavailable": dict(unavailable),
    }
    if breakdowns:
        record["breakdowns"] = breakdowns
    return record


def terminal_insights(
    settings: Settings, account_id: str, media: Mapping[str, Any], reason: str, trigger: str
) -> Record:
    """A media's record when Meta will never measure it: every configured metric unavailable for ``reason``."""
    kind = media.get("media_product_type") or "FEED"
    wanted = metric_registry.configured(settings, kind, media.get("media_type"))
    return media_insights(account_id, media, {}, dict.fromkeys(wanted, reason), trigger)


def account_insights(
    account_id: str,
    day: str,
    metrics: Mapping[str, float],
    unavailable: Mapping[str, str],
    trigger: str,
    captured_at: str | None = None,
    breakdowns: Breakdowns | None = None,
    timeframe: str | None = None,
) -> Record:
    """An ``account_insights`` record of Meta's day ``day`` (``YYYY-MM-DD``), or a ``timeframe`` snapshot taken then."""
    extra = [*_opt(breakdowns), *([{"timeframe": timeframe}] if timeframe else [])]
    record: Record = {
        "kind": "account_insights",
        "id": record_id("account_insights", account_id, day, dict(metrics), dict(unavailable), *extra),
        "account_id": account_id,
        "captured_at": captured_at or now_iso(),
        "trigger": trigger,
        "day": day,
        "metrics": dict(metrics),
        "unavailable": dict(unavailable),
    }
    if timeframe:
        record["timeframe"] = timeframe
    if breakdowns:
        record["breakdowns"] = breakdowns
    return record


def _opt(found: Breakdowns | None) -> list[Breakdowns]:
    """Breakdowns as an extra id part only when there are some, so records without keep their ids."""
    return [found] if found else []


def _iso(raw: Any) -> str | None:
    """Meta's ``2026-11-20T10:00:00+0000`` as ``2026-11-20T10:00:00Z``."""
    if not raw:
        return None
    when = graph.parse_timestamp(raw)
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z") if when else str(raw)


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value not in (None, "", {}, []):
        target[key] = str(value) if key.endswith("_id") else value


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _nested(value: Mapping[str, Any], outer: str, inner: str) -> Any:
    return _dict(value.get(outer)).get(inner)


def _plain(obj: Mapping[str, Any], depth: int = 2) -> dict[str, Any]:
    """``obj``'s scalars (ids as strings, no NaN or infinity) and, ``depth`` levels down, its objects."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict) and depth > 1:
            _put(out, key, _plain(value, depth - 1))
        elif isinstance(value, str | bool | int) or (isinstance(value, float) and math.isfinite(value)):
            _put(out, key, str(value) if key == "id" else value)
    return out


def _attachment(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``{"type": ..., **payload}``: an attachment's type and its payload's fields (url, title, ids, ...)."""
    out = _plain(_dict(raw.get("payload")))
    if isinstance(raw.get("type"), str):
        out = {"type": raw["type"], **out}
    return out


def _author(raw: Any) -> dict[str, str] | None:
    if not isinstance(raw, dict):
        return None
    out = {k: str(raw[k]) for k in ("id", "username", "self_ig_scoped_id", "user_ref") if raw.get(k)}
    return out or None


def account_status(account: str, status: str, reason: str, mark: str, captured_at: str | None = None) -> Record:
    """An ``account_status`` record: the account's state changed (``needs_reconnect``), said once per token."""
    return {
        "kind": "account_status",
        "id": record_id("account_status", account, status, mark),
        "account_id": account,
        "captured_at": captured_at or now_iso(),
        "trigger": "status",
        "status": status,
        "reason": reason,
    }
