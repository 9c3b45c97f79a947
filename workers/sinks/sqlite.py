"""``sqlite:///relative.sqlite3`` or ``sqlite:////absolute.sqlite3``: the embedded default.

Tables of :mod:`workers.sinks._tables` in WAL mode; each batch is one transaction of three
``executemany`` upserts (records, metrics, breakdowns) keyed by record id, so a redelivered record is stored once. The
connection is kept for the process's next batch (:mod:`workers.sinks._reuse`).
A database file the sink creates is ``0600`` whatever the umask (SQLite gives its ``-wal`` and
``-shm`` files the database file's mode). Options: ``table_prefix``.
Failure policy: raise (a locked or unwritable database is retried).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from config.settings import Settings
from workers.sinks import LocalFileSink, Record
from workers.sinks import _reuse as reuse
from workers.sinks import _tables as tables


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:`` URL: three slashes relative, four absolute."""
    path = unquote(urlsplit(url).path)
    return path[1:] if path.startswith("/") else path


class SqliteSink(LocalFileSink):
    """Upserts records into a SQLite database."""

    schemes = ("sqlite",)
    idempotent = True

    def __init__(self, url: str, options: Mapping[str, Any], settings: Settings) -> None:
        super().__init__(url, options, settings)
        self.path = sqlite_path(self.url)
        self.prefix = tables.safe_prefix(self.options.get("table_prefix"))
        self.upsert, self.upsert_metrics = tables.insert_sql(self.prefix, "?")
        self.upsert_breakdowns = tables.breakdowns_sql(self.prefix, "?")
        self._conn: sqlite3.Connection | None = None

    def _key(self) -> str:
        return f"sqlite:{os.path.abspath(self.path)}:{self.prefix}"

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = reuse.take(self._key()) or self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, self.file_mode))  # created owner-only, before SQLite does
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # WAL with synchronous=NORMAL stays consistent through any crash and loses nothing when a
            # process dies; only an OS crash or power cut can undo the last commits. Commits then skip
            # an fsync each (a batch is a commit), the WAL being synced at checkpoints.
            conn.execute("PRAGMA synchronous=NORMAL")
            for statement in tables.ddl(self.prefix, "TEXT"):
                conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    def send(self, records: Sequence[Record]) -> None:
        rows, metrics = tables.rows(records)
        try:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(self.upsert, rows)
                conn.executemany(self.upsert_metrics, metrics)
                conn.executemany(self.upsert_breakdowns, tables.breakdown_rows(records))
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        except (sqlite3.Error, OSError) as exc:
            self._drop()
            raise tables.driver_error("sqlite sink", exc) from None

    def close(self) -> None:
        """Keep the connection for this process's next batch (see :mod:`workers.sinks._reuse`)."""
        if self._conn is not None:
            reuse.keep(self._key(), self._conn, self._conn.close)
            self._conn = None

    def _drop(self) -> None:
        """Close the connection for good (after an error it is not reused)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
