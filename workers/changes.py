"""Meta deliveries into changes, without I/O.

One delivery holds entries, each with ``changes[]`` (comments, mentions, story_insights, ...)
and/or ``messaging[]`` (Messenger-style events). ``iter_changes`` flattens them into ``Change``
values with a dedupe ``key`` that is the same whenever Meta re-sends the same change, in any
batch (Meta re-batches on retry, so deliveries themselves are never the unit of dedupe).
The envelope itself is checked by ``config.envelope``, as the web checked it. Documented oddities
tolerated: array-wrapped bodies, ``time`` in s or ms, ``comment_id`` for
``id``, an entry with ``field``/``value`` and no ``changes[]``.
https://developers.facebook.com/docs/instagram-platform/webhooks/examples

``problem`` is the worker's edge check: a known change whose account or media id is not numeric
(they become Graph paths and Redis members) or whose time is not a real instant is never acted on.
The App Dashboard's "Test" button sends entries with id ``"0"`` (``Change.test``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from config.envelope import EnvelopeError, envelopes

# Webhook fields about a comment on a media: they carry the comment's id and trigger a fetch of the media.
COMMENT_FIELDS = frozenset({"comments", "live_comments"})
MESSAGING_EVENTS = {  # event key in a messaging[] item -> webhook field it belongs to
    "message": "messages",
    "reaction": "message_reactions",
    "postback": "messaging_postbacks",
    "referral": "messaging_referral",
    "read": "messaging_seen",
    "optin": "messaging_optins",
    "pass_thread_control": "messaging_handover",
    "take_thread_control": "messaging_handover",
    "request_thread_control": "messaging_handover",
    "policy_enforcement": "messaging_policy_enforcement",
    "response_feedback": "response_feedback",
    "message_edit": "message_edit",
}
MESSAGING_FIELDS = frozenset(MESSAGING_EVENTS.values()) | {"message_echoes", "standby", "messaging"}
KNOWN_FIELDS = COMMENT_FIELDS | {"mentions", "story_insights"} | MESSAGING_FIELDS
TEST_ACCOUNT = "0"  # entry.id of the App Dashboard's "Test" deliveries
NUMERIC_ID = re.compile(r"[0-9]{1,30}")
LATEST_TIME = 32503680000.0  # 3000-01-01 in epoch seconds: any later "time" is not a real send time


@dataclass(frozen=True)
class Change:
    """One change of one entry."""

    object: str
    account_id: str
    field: str
    value: dict[str, Any]
    time: float | None
    key: str

    @property
    def known(self) -> bool:
        """True for the objects and fields igrelay acts on; others are counted and ignored."""
        return self.object == "instagram" and self.field in KNOWN_FIELDS

    @property
    def media_id(self) -> str | None:
        """The media the change is about, when it names one."""
        media = self.value.get("media")
        if isinstance(media, dict) and media.get("id"):
            return str(media["id"])
        return str(self.value["media_id"]) if self.value.get("media_id") else None

    @property
    def test(self) -> bool:
        """True for a delivery made by the App Dashboard's "Test" button (no real account)."""
        return self.account_id == TEST_ACCOUNT


def problem(change: Change) -> str | None:
    """Why the worker must not act on this known change (ids not numeric, time out of range), or None."""
    if not NUMERIC_ID.fullmatch(change.account_id):
        return "account id is not numeric"
    media_id = change.media_id
    if media_id is not None and not NUMERIC_ID.fullmatch(media_id):
        return "media id is not numeric"
    if change.time is not None and not (math.isfinite(change.time) and 0 <= change.time < LATEST_TIME):
        return "time out of range"
    if change.field == "story_insights" and any(_not_finite(x) for x in change.value.values()):
        return "metric is not a finite number"
    return None


def _not_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


class MalformedDelivery(ValueError):
    """The stored body is not a Meta envelope (the web checked it, so this means a bug)."""


def iter_changes(body: bytes | str) -> Iterator[Change]:
    """Every change in one delivery body, in order."""
    try:
        items = envelopes(body)
    except EnvelopeError as exc:
        raise MalformedDelivery(str(exc)) from exc
    for envelope in items:
        obj = envelope["object"]
        for entry in envelope["entry"]:
            if isinstance(entry, dict):
                yield from _entry_changes(obj, entry)


def _entry_changes(obj: str, entry: dict[str, Any]) -> Iterator[Change]:
    account = str(entry.get("id", ""))
    when = normalize_time(entry.get("time"))
    items = entry.get("changes")
    if not isinstance(items, list) and "field" in entry:
        items = [{"field": entry["field"], "value": entry.get("value")}]
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            field, value = str(item.get("field", "")), _as_dict(item.get("value"))
            ts = normalize_time(value.get("timestamp")) if field in MESSAGING_FIELDS else None
            yield Change(obj, account, field, value, when if ts is None else ts, change_key(obj, account, field, value))
    for list_name in ("messaging", "standby"):
        for event in entry.get(list_name) or []:
            if isinstance(event, dict):
                field = "standby" if list_name == "standby" else _messaging_field(event)
                ts = normalize_time(event.get("timestamp"))
                ts = when if ts is None else ts
                yield Change(obj, account, field, event, ts, change_key(obj, account, field, event))


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"value": value}


def _messaging_field(event: dict[str, Any]) -> str:
    for name, field in MESSAGING_EVENTS.items():
        if name in event:
            if name == "message" and isinstance(event[name], dict) and event[name].get("is_echo"):
                return "message_echoes"
            return field
    return "messaging"


def normalize_time(raw: Any) -> float | None:
    """Seconds since the epoch from Meta's ``time``/``timestamp`` (seconds or milliseconds); not checked
    for range (``problem`` does), None when absent or not a number."""
    if isinstance(raw, bool):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        return None
    return value / 1000.0 if value > 1e11 else value


def change_key(obj: str, account: str, field: str, value: dict[str, Any]) -> str:
    """What makes this change the same change when Meta sends it again.

    Meta has no event id, and ``entry.time`` is the send time (it may differ on a retry), so
    the key is the object's own id where there is one, else a hash of the value.
    """
    ident = _identity(field, value)
    if ident is None:
        ident = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:32]
    return f"{obj}|{account}|{field}|{ident}"


def _identity(field: str, value: dict[str, Any]) -> str | None:
    if field in COMMENT_FIELDS:
        ident = value.get("id") or value.get("comment_id")
        return str(ident) if ident else None
    if field == "mentions":
        return f"{value.get('media_id', '')}:{value.get('comment_id', '')}" if value.get("media_id") else None
    message = value.get("message")
    if isinstance(message, dict) and message.get("mid"):
        return f"{message['mid']}:{'deleted' if message.get('is_deleted') else 'sent'}"
    edit = value.get("message_edit")
    if isinstance(edit, dict) and edit.get("mid"):
        return f"{edit['mid']}:edit:{edit.get('num_edit', '')}"
    return None
