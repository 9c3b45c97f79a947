"""Values as Redis answers them (bytes, or str on a decoding client) turned into text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def text(value: Any) -> str:
    """``value`` as text: bytes decoded as UTF-8, anything else through ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)


def text_map(raw: Mapping[Any, Any]) -> dict[str, str]:
    """A hash as ``HGETALL`` answers it, with text keys and values."""
    return {text(k): text(v) for k, v in raw.items()}
