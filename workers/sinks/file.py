"""``file:///abs/path/records.jsonl``: append JSON Lines.

Each batch is written with one ``write`` on a file opened with O_APPEND and then fsynced, so
concurrent writers never interleave inside a line and a crash leaves at most a partial last
batch, which readers skip (lines always end with a newline). Failure policy: raise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from config.settings import ConfigError
from workers.sinks import Record, Sink, SinkError


class FileSink(Sink):
    """Appends records to a JSON Lines file."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.path = unquote(urlsplit(self.url).path)
        if not os.path.isabs(self.path):
            raise ConfigError(f"IGRELAY_SINKS: file sink needs an absolute path (file:///abs/path), got {self.url!r}")

    def send(self, records: Sequence[Record]) -> None:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise SinkError(f"file sink: {exc.strerror}") from exc
