"""``sqlite:///relative.sqlite3`` or ``sqlite:////absolute.sqlite3``: the embedded default.

Tables of :mod:`workers.sinks._tables` in WAL mode; each batch is one transaction: an
``executemany`` upsert of the record rows keyed by record id (``ON CONFLICT DO NOTHING``, so a
redelivered record is stored once), then two statements that read the metric and breakdown rows
of the records it inserted out of their JSON (``_tables.sqlite_derived_sql``). The connection is
kept for the process's next batch (:mod:`workers.sinks._reuse`).
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

MAX_ROWID = 2**63 - 1


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:`` URL: three slashes relative, four absolute."""
    path = unquote(urlsplit(url).path)
    return path[1:] if path.startswith("/") else path


class SqliteSink(LocalFileSink):
    """Upserts records into a SQLite database."""

    schemes = ("sqlite",)
    idempotent = True
    flush_records = 5000  # a transaction each: a backlog of 20,000 rows is 4 commits, not 40

    def __init__(self, url: str, options: Mapping[str, Any], settings: Settings) -> None:
        super().__init__(url, options, settings)
        self.path = sqlite_path(self.url)
        self.prefix = tables.safe_prefix(self.options.get("table_prefix"))
        self.upsert = tables.insert_sql(self.prefix, "?")
        self.derived = tables.sqlite_derived_sql(self.prefix)
        self.last_rowid = f"SELECT max(rowid) FROM {self.prefix}records"  # nosec B608 - a checked prefix
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
            # Checkpoint the WAL every 10,000 pages (40 MB) instead of 1,000: a page that many batches
            # touch (the random-keyed indexes') is copied into the database once, not once per batch.
            conn.execute("PRAGMA wal_autocheckpoint=10000")
            for statement in tables.ddl(self.prefix, "TEXT"):
                conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    def send(self, records: Sequence[Record]) -> None:
        rows = tables.rows(records)
        try:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")  # no other writer until COMMIT: the new rowids are all ours
            try:
                last = conn.execute(self.last_rowid).fetchone()[0] or 0
                if last >= MAX_ROWID:  # SQLite then picks free rowids at random: none is certain to be new
                    raise sqlite3.DatabaseError("the records table has no rowid left after its largest")
                conn.executemany(self.upsert, rows)
                for statement in self.derived:
                    conn.execute(statement, (last,))
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
