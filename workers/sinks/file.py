"""``file:///abs/path/records.jsonl``: append JSON Lines.

Each batch is written under an exclusive ``flock`` with O_APPEND and then fsynced, so concurrent
writers never interleave inside a line. A write error removes the whole batch; a crash mid-write
can leave a partial last line, which the next writer cuts off before appending (its batch failed
and is sent again), so every line in the file is a whole record. A file the sink creates is
``0600`` whatever the umask (records can hold private comments); an existing file keeps its mode.
Not idempotent: the delivery layer marks what was written. Failure policy: raise.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from config.settings import ConfigError, Settings
from workers.sinks import LocalFileSink, Record, SinkError

BLOCK = 65536


def cut_partial_line(fd: int) -> None:
    """Truncate the file after its last newline (no-op when it already ends with one)."""
    end = os.fstat(fd).st_size
    if end == 0 or os.pread(fd, 1, end - 1) == b"\n":
        return
    pos = end
    while pos > 0:
        start = max(0, pos - BLOCK)
        found = os.pread(fd, pos - start, start).rfind(b"\n")
        if found >= 0:
            os.ftruncate(fd, start + found + 1)
            return
        pos = start
    os.ftruncate(fd, 0)


class FileSink(LocalFileSink):
    """Appends records to a JSON Lines file."""

    schemes = ("file",)

    def __init__(self, url: str, options: Mapping[str, Any], settings: Settings) -> None:
        super().__init__(url, options, settings)
        self.path = unquote(urlsplit(self.url).path)
        if not os.path.isabs(self.path):
            raise ConfigError(f"IGRELAY_SINKS: file sink needs an absolute path (file:///abs/path), got {self.url!r}")

    def send(self, records: Sequence[Record]) -> None:
        data = memoryview("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode())
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, self.file_mode)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                cut_partial_line(fd)
                start = os.fstat(fd).st_size
                try:
                    while data:
                        data = data[os.write(fd, data) :]
                    os.fsync(fd)
                except OSError:
                    os.ftruncate(fd, start)  # a failed batch leaves nothing behind
                    raise
            finally:
                os.close(fd)  # also releases the lock
        except OSError as exc:
            raise SinkError(f"file sink: {exc.strerror}") from None
