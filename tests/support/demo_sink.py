"""A test-only sink, written the way a new sink is added: this module plus one ``REGISTRY`` line.

``demo://NAME:TOKEN@HOST/SHELF`` keeps records in ``SHELVES``; the token is a secret, the host
``down`` is unreachable. Failure policy: raise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from workers.sinks import Finding, Record, Sink, SinkError

SHELVES: dict[str, list[Record]] = {}


class DemoSink(Sink):
    """Puts records on an in-process shelf."""

    schemes = ("demo",)
    idempotent = False

    def send(self, records: Sequence[Record]) -> None:
        parts = urlsplit(self.url)
        if parts.hostname == "down":
            raise SinkError("demo sink: the shelf is down")
        SHELVES.setdefault(parts.path, []).extend(records)

    def probe(self) -> list[Finding]:
        self.send([])
        return [Finding("ok", "reachable"), Finding("warn", "a demo shelf forgets records on restart")]

    @classmethod
    def redact(cls, url: str) -> str:
        return f"demo://{urlsplit(url).hostname}/…"

    @classmethod
    def secrets(cls, url: str, options: Mapping[str, Any]) -> list[str]:
        return [url, urlsplit(url).password or ""]
