"""The SQL sinks' table layout, shared by the sinks that write it and the console that reads it.

``records`` holds one row per record id (the columns people filter on, plus the whole record as
JSON); ``record_metrics`` holds one row per (record, metric), so metrics are plain SQL::

    SELECT r.media_id, m.value FROM records r JOIN record_metrics m ON m.record_id = r.id
    WHERE m.name = 'reach' ORDER BY r.captured_at;

``record_breakdowns`` holds one row per (record, metric, breakdown, key) of a record's
``breakdowns``: ``SELECT key, value FROM record_breakdowns WHERE metric = 'follower_demographics'
AND breakdown = 'country'``.

``record_metrics`` and ``record_breakdowns`` rows are derived from their record's ``data`` by the
statement that stores the record, so ``record_id`` always names a stored record. Tables made by
igrelay before 2026-12 declare it a foreign key; new ones do not: SQLite never enforced it (its
``foreign_keys`` pragma is off), and PostgreSQL's check of each row was 40% of a batch's time
for a guarantee the sinks give by construction.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from config.settings import ConfigError

RECORDS = "records"
METRICS = "record_metrics"
COLUMNS = ("id", "kind", "account_id", "media_id", "captured_at", "trigger", "media_product_type", "data")
BREAKDOWNS = "record_breakdowns"
LAST_TABLE = BREAKDOWNS  # the last table ``ddl`` creates: when it exists, they all do
SQL_SCHEMES = ("sqlite", "postgresql", "postgres")


def ddl(prefix: str, json_type: str, schema: str = "") -> list[str]:
    """``CREATE TABLE/INDEX IF NOT EXISTS`` statements for ``{schema.}{prefix}records`` and friends."""
    index = prefix
    prefix = f"{schema}.{prefix}" if schema else prefix
    return [
        f"CREATE TABLE IF NOT EXISTS {prefix}records (id TEXT PRIMARY KEY, kind TEXT NOT NULL, account_id TEXT,"
        f" media_id TEXT, captured_at TEXT, trigger TEXT, media_product_type TEXT, data {json_type} NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {prefix}record_metrics (record_id TEXT NOT NULL,"
        f" name TEXT NOT NULL, value DOUBLE PRECISION, PRIMARY KEY (record_id, name))",
        f"CREATE INDEX IF NOT EXISTS {index}records_media ON {prefix}records (media_id, captured_at)",
        f"CREATE INDEX IF NOT EXISTS {index}records_account ON {prefix}records (account_id, kind, captured_at)",
        f"CREATE INDEX IF NOT EXISTS {index}record_metrics_name ON {prefix}record_metrics (name)",
        # The console's "latest records" (newest first, any account) walks this index.
        f"CREATE INDEX IF NOT EXISTS {index}records_captured ON {prefix}records (captured_at)",
        f"CREATE TABLE IF NOT EXISTS {prefix}record_breakdowns (record_id TEXT NOT NULL,"
        " metric TEXT NOT NULL, breakdown TEXT NOT NULL, key TEXT NOT NULL, value DOUBLE PRECISION,"
        " PRIMARY KEY (record_id, metric, breakdown, key))",
    ]


def safe_prefix(raw: Any) -> str:
    """A table prefix made only of letters, digits and underscores (it is spliced into SQL)."""
    text = str(raw or "")
    if not all(c.isalnum() or c == "_" for c in text):
        raise ConfigError("IGRELAY_CONFIG: [sinks] table_prefix may hold only letters, digits and underscores")
    return text


def qualified(options: Any, table: str) -> str:
    """``{schema.}{prefix}TABLE`` for a SQL sink with these TOML options (checked, safe to splice)."""
    schema, prefix = safe_prefix(options.get("schema")), safe_prefix(options.get("table_prefix"))
    return f"{schema}.{prefix}{table}" if schema else f"{prefix}{table}"


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:`` URL: three slashes relative, four absolute."""
    path = unquote(urlsplit(url).path)
    return path[1:] if path.startswith("/") else path
