"""History from the first SQL sink (SQLite or PostgreSQL), in the sinks' own table layout.

Every query is bounded (``LIMIT``) and walks an index of ``config.tables``: records by media, by
account and kind, or by capture time. The console opens the database read-only and never writes.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from config import sinkconf, tables
from config.settings import Settings

MEDIA_KINDS = ("media_insights", "story_insights")
MAX_POINTS = 2000  # records read for one media's charts
MAX_SCAN = 2000  # records read to list an account's media
ROW = "id, kind, account_id, media_id, captured_at, trigger, media_product_type, data"


class History:
    """Read-only access to the records a SQL sink stored."""

    def __init__(self, name: str, url: str, options: Mapping[str, Any]) -> None:
        self.name, self.url = name, url
        self.records = tables.qualified(options, tables.RECORDS)
        self.postgres = sinkconf.scheme(url) != "sqlite"

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        if self.postgres:
            import psycopg  # optional driver, as in the PostgreSQL sink

            with psycopg.connect(self.url, connect_timeout=5) as conn:
                conn.read_only = True
                yield conn.cursor()
            return
        path = tables.sqlite_path(self.url)
        if not os.path.exists(path):
            raise FileNotFoundError(path)
        lite = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            yield lite.cursor()
        finally:
            lite.close()

    def rows(
        self, where: str, params: Sequence[Any], order: str, limit: int, lazy: bool = False
    ) -> list[dict[str, Any]]:
        """Records matching ``where`` (with ``?`` marks), at most ``limit``; ``lazy`` leaves the JSON
        in ``_data`` for :func:`_decode_data` to decode only the rows that are shown."""
        # Table names passed tables.safe_prefix(); values go as parameters (hence the nosec).
        sql = f"SELECT {ROW} FROM {self.records} WHERE {where} ORDER BY {order} LIMIT {int(limit)}"  # nosec B608
        if self.postgres:
            sql = sql.replace("?", "%s")
        try:
            with self._cursor() as cur:
                cur.execute(sql, list(params))
                fetched = cur.fetchall()
        except FileNotFoundError:
            return []
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        return [_columns(row) if lazy else _decode(row) for row in fetched]

    def account_media(self, account: str, limit: int = 100) -> list[dict[str, Any]]:
        """The account's media, newest published first, each with its latest record."""
        found: list[dict[str, Any]] = []
        for kind in MEDIA_KINDS:  # one kind per query, so the index gives the order and LIMIT stops early
            found += self.rows("account_id = ? AND kind = ?", [account, kind], "captured_at DESC", MAX_SCAN, lazy=True)
        found.sort(key=lambda r: r["captured_at"] or "", reverse=True)
        latest: dict[str, dict[str, Any]] = {}
        for record in found:
            latest.setdefault(str(record.get("media_id")), record)
        chosen = [_decode_data(r) for r in latest.values()]
        newest = sorted(chosen, key=lambda r: r.get("media_timestamp") or r["captured_at"] or "", reverse=True)
        return newest[:limit]

    def media(self, media_id: str) -> list[dict[str, Any]]:
        """Every stored record about one media, oldest first (insights and webhook events)."""
        return self.rows("media_id = ?", [media_id], "captured_at", MAX_POINTS)

    def account_days(self, account: str, limit: int = 400) -> list[dict[str, Any]]:
        """The account's daily insights, latest record per day, oldest day first."""
        found = self.rows("account_id = ? AND kind = ?", [account, "account_insights"], "captured_at DESC", limit)
        days: dict[str, dict[str, Any]] = {}
        for record in found:
            if record.get("timeframe"):  # a demographics snapshot, not a day
                continue
            days.setdefault(str(record.get("day") or record["captured_at"][:10]), record)
        return [days[d] for d in sorted(days)]

    def demographics(self, account: str) -> dict[str, Any] | None:
        """The account's latest demographics snapshot (an ``account_insights`` record with a ``timeframe``)."""
        found = self.rows("account_id = ? AND kind = ?", [account, "account_insights"], "captured_at DESC", 20)
        return next((r for r in found if r.get("timeframe") and r.get("breakdowns")), None)

    def activity(self, account: str = "", kind: str = "", field: str = "", limit: int = 100) -> list[dict[str, Any]]:
        """The latest records, newest first, filtered by account, kind and webhook field (trigger)."""
        where, params = ["1 = 1"], []
        for column, value in (("account_id", account), ("kind", kind), ("trigger", field)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        return self.rows(" AND ".join(where), params, "captured_at DESC", limit)


def _columns(row: Sequence[Any]) -> dict[str, Any]:
    record = dict(zip(("id", "kind", "account_id", "media_id", "captured_at", "trigger"), row[:6], strict=True))
    record["_data"] = row[7]
    return record


def _decode_data(record: dict[str, Any]) -> dict[str, Any]:
    raw = record.pop("_data", None)
    data = raw if isinstance(raw, dict) else json.loads(raw) if raw else {}
    return {**(data if isinstance(data, dict) else {}), **record}


def _decode(row: Sequence[Any]) -> dict[str, Any]:
    return _decode_data(_columns(row))


def open_history(settings: Settings) -> History | None:
    """History over the first configured SQL sink, or None when there is none."""
    for name, (url, options) in sinkconf.configured(settings).items():
        if sinkconf.scheme(url) in tables.SQL_SCHEMES:
            return History(name, url, options)
    return None
