"""Not a sink: the SQL layout shared by the SQLite and PostgreSQL sinks, and the rows a record becomes.

``records`` holds one row per record id (the columns people filter on, plus the whole record as
JSON); ``record_metrics`` holds one row per (record, metric), so metrics are plain SQL::

    SELECT r.media_id, m.value FROM records r JOIN record_metrics m ON m.record_id = r.id
    WHERE m.name = 'reach' ORDER BY r.captured_at;

``record_breakdowns`` holds one row per (record, metric, breakdown, key) of a record's
``breakdowns``: ``SELECT key, value FROM record_breakdowns WHERE metric = 'follower_demographics'
AND breakdown = 'country'``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from config.settings import ConfigError
from workers.sinks import Record

COLUMNS = ("id", "kind", "account_id", "media_id", "captured_at", "trigger", "media_product_type", "data")


def ddl(prefix: str, json_type: str, schema: str = "") -> list[str]:
    """``CREATE TABLE/INDEX IF NOT EXISTS`` statements for ``{schema.}{prefix}records`` and friends."""
    index = prefix
    prefix = f"{schema}.{prefix}" if schema else prefix
    return [
        f"CREATE TABLE IF NOT EXISTS {prefix}records (id TEXT PRIMARY KEY, kind TEXT NOT NULL, account_id TEXT,"
        f" media_id TEXT, captured_at TEXT, trigger TEXT, media_product_type TEXT, data {json_type} NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {prefix}record_metrics (record_id TEXT NOT NULL REFERENCES {prefix}records(id),"
        f" name TEXT NOT NULL, value DOUBLE PRECISION, PRIMARY KEY (record_id, name))",
        f"CREATE INDEX IF NOT EXISTS {index}records_media ON {prefix}records (media_id, captured_at)",
        f"CREATE INDEX IF NOT EXISTS {index}records_account ON {prefix}records (account_id, kind, captured_at)",
        f"CREATE INDEX IF NOT EXISTS {index}record_metrics_name ON {prefix}record_metrics (name)",
        f"CREATE TABLE IF NOT EXISTS {prefix}record_breakdowns (record_id TEXT NOT NULL REFERENCES {prefix}records(id),"
        " metric TEXT NOT NULL, breakdown TEXT NOT NULL, key TEXT NOT NULL, value DOUBLE PRECISION,"
        " PRIMARY KEY (record_id, metric, breakdown, key))",
    ]


LAST_TABLE = "record_breakdowns"  # the last table ``ddl`` creates: when it exists, they all do


def breakdowns_sql(prefix: str, mark: str, schema: str = "") -> str:
    """The upsert of ``breakdown_rows`` with ``mark`` as the placeholder (``?`` or ``%s``)."""
    prefix = f"{schema}.{prefix}" if schema else prefix
    marks = ", ".join([mark] * 5)
    # prefix and schema passed safe_prefix(); values go as parameters (hence the nosec).
    return (
        f"INSERT INTO {prefix}record_breakdowns (record_id, metric, breakdown, key, value) VALUES ({marks})"  # nosec B608
        " ON CONFLICT (record_id, metric, breakdown, key) DO NOTHING"
    )


def breakdown_rows(records: Sequence[Record]) -> list[tuple[Any, ...]]:
    """``(record_id, metric, breakdown, key, value)`` rows of every record's ``breakdowns``."""
    out: dict[tuple[str, str, str, str], float] = {}
    for r in records:
        for metric, by in (r.get("breakdowns") or {}).items():
            for breakdown, values in by.items():
                for key, value in values.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        out.setdefault((str(r["id"]), metric, breakdown, str(key)), float(value))
    return [(*k, v) for k, v in out.items()]


def insert_sql(prefix: str, mark: str, schema: str = "") -> tuple[str, str]:
    """The two upserts (records, metrics) with ``mark`` as the placeholder (``?`` or ``%s``)."""
    prefix = f"{schema}.{prefix}" if schema else prefix
    marks = ", ".join([mark] * len(COLUMNS))
    # prefix and schema passed safe_prefix(); values go as parameters (hence the nosec).
    return (
        f"INSERT INTO {prefix}records ({', '.join(COLUMNS)}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING",  # nosec B608
        f"INSERT INTO {prefix}record_metrics (record_id, name, value) VALUES ({mark}, {mark}, {mark})"  # nosec B608
        " ON CONFLICT (record_id, name) DO NOTHING",
    )


def rows(records: Sequence[Record]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Record rows and metric rows for ``records`` (a batch may repeat an id: first one wins)."""
    seen: set[str] = set()
    out: list[tuple[Any, ...]] = []
    metrics: list[tuple[Any, ...]] = []
    for r in records:
        rid = str(r["id"])
        if rid in seen:
            continue
        seen.add(rid)
        data = json.dumps(r, ensure_ascii=False, separators=(",", ":"), default=str)
        out.append(
            (
                rid,
                r.get("kind"),
                _s(r.get("account_id")),
                _s(r.get("media_id")),
                r.get("captured_at"),
                r.get("trigger"),
                r.get("media_product_type"),
                data,
            )
        )
        for name, value in (r.get("metrics") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics.append((rid, name, float(value)))
    return out, metrics


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


def safe_prefix(raw: Any) -> str:
    """A table prefix made only of letters, digits and underscores (it is spliced into SQL)."""
    text = str(raw or "")
    if not all(c.isalnum() or c == "_" for c in text):
        raise ConfigError("IGRELAY_CONFIG: [sinks] table_prefix may hold only letters, digits and underscores")
    return text
