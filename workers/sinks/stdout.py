"""``stdout:``: one JSON line per record. Failure policy: raise (a closed stdout is retried)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from workers.sinks import Record, Sink, SinkError


class StdoutSink(Sink):
    """Writes each record as one JSON line to standard output."""

    schemes = ("stdout",)

    def send(self, records: Sequence[Record]) -> None:
        try:
            sys.stdout.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            sys.stdout.flush()
        except (OSError, ValueError) as exc:
            raise SinkError(f"stdout: {exc}") from exc

    @classmethod
    def redact(cls, url: str) -> str:
        return "stdout:"

    @classmethod
    def secrets(cls, url: str, options: Mapping[str, Any]) -> list[str]:
        return []
