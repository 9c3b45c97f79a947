"""``memory:``: records kept in a process-wide list, for tests and ``igrelay dev`` demos.
Failure policy: never fails."""

from __future__ import annotations

from collections.abc import Sequence

from workers.sinks import Record, Sink

RECORDS: list[Record] = []


class MemorySink(Sink):
    """Appends records to ``workers.sinks.memory.RECORDS``."""

    idempotent = False

    def send(self, records: Sequence[Record]) -> None:
        RECORDS.extend(records)
