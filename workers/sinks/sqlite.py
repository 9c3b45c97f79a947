"""``sqlite:///relative.sqlite3`` or ``sqlite:////absolute.sqlite3``: the embedded default.

Tables of :mod:`workers.sinks._tables` in WAL mode; each batch is one transaction of three
``executemany`` upserts keyed by record id, so a redelivered record is stored once.
Options: ``table_prefix``. Failure policy: raise (a locked or unwritable database is retried).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from config.settings import Settings, redact_url
from workers.sinks import Record, Sink, SinkError
from workers.sinks import _tables as tables


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:`` URL: three slashes relative, four absolute."""
    path = unquote(urlsplit(url).path)
    return path[1:] if path.startswith("/") else path


class SqliteSink(Sink):
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

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                for statement in tables.ddl(self.prefix, "TEXT"):
                    conn.execute(statement)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

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
            raise SinkError(f"sqlite sink: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @classmethod
    def redact(cls, url: str) -> str:
        """The whole path: it says where records go and holds no secret."""
        return redact_url(url, path_chars=None)

    @classmethod
    def secrets(cls, url: str, options: Mapping[str, Any]) -> list[str]:
        return []
