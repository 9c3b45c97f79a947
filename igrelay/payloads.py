"""Realistic Meta webhook deliveries, signed like Meta signs them.

Used by ``igrelay simulate``, the tests and the benchmarks. Shapes follow Meta's examples:
https://developers.facebook.com/docs/instagram-platform/webhooks/examples
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any

FIELDS = ("comments", "live_comments", "mentions", "story_insights", "messages")
_counter = itertools.count(int(time.time() * 1000) % 10**9)


def sign(body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature-256`` header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _next_id() -> str:
    return f"18{next(_counter):015d}"


def change(field: str, media_id: str, account_id: str) -> dict[str, Any]:
    """One ``changes[]`` item (or a ``messaging[]`` event for ``messages``) for ``field``."""
    if field in ("comments", "live_comments"):
        return {
            "field": field,
            "value": {
                "id": _next_id(),
                "from": {"id": "1234567890", "username": "some_user"},
                "text": "Love this! ❤️ très bien",
                "media": {"id": media_id, "media_product_type": "FEED"},
            },
        }
    if field == "mentions":
        return {"field": "mentions", "value": {"media_id": media_id, "comment_id": _next_id()}}
    if field == "story_insights":
        return {
            "field": "story_insights",
            "value": {
                "media_id": media_id,
                "exits": 1,
                "replies": -1,
                "reach": 17,
                "taps_forward": 12,
                "taps_back": -1,
                "impressions": 28,
            },
        }
    if field == "messages":
        return {
            "sender": {"id": "9876543210"},
            "recipient": {"id": account_id},
            "timestamp": int(time.time() * 1000),
            "message": {"mid": "aWdfZAG1" + _next_id(), "text": "Hi there 👋"},
        }
    raise ValueError(f"unknown field {field!r} (one of {', '.join(FIELDS)})")


def delivery(field: str, account_id: str, media_id: str, count: int = 1) -> dict[str, Any]:
    """A delivery with ``count`` changes of ``field`` for one account."""
    items = [change(field, media_id, account_id) for _ in range(count)]
    entry: dict[str, Any] = {"id": account_id, "time": int(time.time())}
    if field == "messages":
        entry["time"] = int(time.time() * 1000)
        entry["messaging"] = items
    else:
        entry["changes"] = items
    return {"object": "instagram", "entry": [entry]}


def encode(payload: Any) -> bytes:
    """Compact JSON with non-ASCII escaped as ``\\uXXXX``, as Meta sends it."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()
