"""Meta's webhook envelope without I/O, for both processes: the web checks it, the worker walks it.

A delivery body is ``{"object": str, "entry": [...]}``, or a JSON array of such objects (a shape
seen in Meta's own examples); each entry holds ``changes[]`` and/or ``messaging[]`` items.
https://developers.facebook.com/docs/graph-api/webhooks/getting-started#event-notifications
"""

from __future__ import annotations

import json
from typing import Any


class EnvelopeError(ValueError):
    """The body is not Meta's envelope; the text says what is wrong (never the body)."""


def envelopes(body: bytes | str) -> list[dict[str, Any]]:
    """The envelope objects of a delivery body, each with a str ``object`` and an ``entry`` list."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError("body is not JSON") from exc
    except RecursionError as exc:  # json's C parser gives up past the recursion limit
        raise EnvelopeError("body nests too deeply") from exc
    items = data if isinstance(data, list) else [data]
    if not items:
        raise EnvelopeError("empty array")
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("object"), str):
            raise EnvelopeError("expected an object with 'object' and 'entry'")
        if not isinstance(item.get("entry"), list):
            raise EnvelopeError("'entry' must be a list")
    return items
