"""Not a sink: the rows a record becomes in the SQL sinks' tables (the layout is ``config.tables``),
and how their drivers' errors are reported.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from config.tables import COLUMNS as COLUMNS
from config.tables import LAST_TABLE as LAST_TABLE
from config.tables import ddl as ddl
from config.tables import safe_prefix as safe_prefix
from workers.sinks import Record, SinkError

# json.dumps(r, ...) builds this encoder on every call; one per process is the same output, cheaper.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


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


@dataclass(frozen=True)
class Staged:
    """PostgreSQL's bulk path: staging tables (once per connection), a COPY and an upsert per table."""

    staging: tuple[str, ...]
    copies: tuple[str, ...]
    inserts: tuple[str, ...]


def staged_sql(prefix: str, schema: str = "") -> Staged:
    """Statements that COPY a batch into temporary tables and upsert it from there, one per table."""
    target = f"{schema}.{prefix}" if schema else prefix
    cols = ", ".join(COLUMNS)
    values = ", ".join("data::jsonb" if c == "data" else c for c in COLUMNS)
    text_cols = ", ".join(f"{c} TEXT" for c in COLUMNS)
    stage, stage_m = f"igrelay_stage_{prefix}records", f"igrelay_stage_{prefix}record_metrics"
    stage_b = f"igrelay_stage_{prefix}record_breakdowns"
    breakdown_cols = "record_id, metric, breakdown, key, value"
    # ON COMMIT DELETE ROWS empties them at each commit; prefix and schema passed safe_prefix().
    return Staged(
        staging=(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ({text_cols}) ON COMMIT DELETE ROWS",
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage_m} (record_id TEXT, name TEXT, value DOUBLE PRECISION)"
            " ON COMMIT DELETE ROWS",
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage_b} (record_id TEXT, metric TEXT, breakdown TEXT, key TEXT,"
            " value DOUBLE PRECISION) ON COMMIT DELETE ROWS",
        ),
        copies=(
            f"COPY {stage} ({cols}) FROM STDIN",
            f"COPY {stage_m} (record_id, name, value) FROM STDIN",
            f"COPY {stage_b} ({breakdown_cols}) FROM STDIN",
        ),
        inserts=(
            f"INSERT INTO {target}records ({cols}) SELECT {values} FROM {stage}"  # nosec B608
            " ON CONFLICT (id) DO NOTHING",
            f"INSERT INTO {target}record_metrics (record_id, name, value) SELECT record_id, name, value"  # nosec B608
            f" FROM {stage_m} ON CONFLICT (record_id, name) DO NOTHING",
            f"INSERT INTO {target}record_breakdowns ({breakdown_cols}) SELECT {breakdown_cols}"  # nosec B608
            f" FROM {stage_b} ON CONFLICT (record_id, metric, breakdown, key) DO NOTHING",
        ),
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
        get = r.get
        account, media = get("account_id"), get("media_id")
        out.append(
            (
                rid,
                get("kind"),
                None if account is None else str(account),
                None if media is None else str(media),
                get("captured_at"),
                get("trigger"),
                get("media_product_type"),
                _encode(r),
            )
        )
        metrics += [
            (rid, name, float(value))
            for name, value in (get("metrics") or {}).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        ]
    return out, metrics


# Fixed descriptions by SQLSTATE class: https://www.postgresql.org/docs/current/errcodes-appendix.html
SQLSTATE_CLASSES = {
    "08": "connection failure",
    "22": "data exception",
    "23": "constraint violation",
    "25": "invalid transaction state",
    "28": "authentication failed",
    "3D": "database does not exist",
    "3F": "schema does not exist",
    "40": "transaction rolled back",
    "42": "permission denied or invalid statement",
    "53": "server out of resources",
    "57": "server shutting down or statement cancelled",
    "58": "server system error",
    "XX": "server internal error",
}
# Errors raised before the server says anything (bad URL, refused connection, lost connection).
CLIENT_ERRORS = {
    "ProgrammingError": "invalid connection URL or statement",
    "OperationalError": "cannot connect or the connection was lost",
    "InterfaceError": "driver interface error",
}
SQLITE_ERRORS = {
    "SQLITE_BUSY": "database is locked",
    "SQLITE_LOCKED": "table is locked",
    "SQLITE_CANTOPEN": "cannot open the database file",
    "SQLITE_READONLY": "database is read-only",
    "SQLITE_FULL": "disk full",
    "SQLITE_IOERR": "disk I/O error",
    "SQLITE_CORRUPT": "database file is corrupt",
    "SQLITE_NOTADB": "file is not a database",
    "SQLITE_PERM": "permission denied",
}


def driver_error(label: str, exc: BaseException) -> SinkError:
    """A retryable error naming ``exc``'s type, SQLSTATE or SQLite code and a fixed description.

    Never the driver's own text: libpq quotes URL parts (a password with a raw ``%`` among them)
    and SQLite and the OS quote paths, and this text reaches logs, Redis and ``igrelay check``."""
    kind = type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None)
    code = getattr(exc, "sqlite_errorname", None)
    if isinstance(sqlstate, str) and sqlstate:
        what = f"SQLSTATE {sqlstate}: {SQLSTATE_CLASSES.get(sqlstate[:2], 'database error')}"
    elif isinstance(code, str) and code:
        base = "_".join(code.split("_")[:2])  # SQLITE_IOERR_WRITE is an SQLITE_IOERR
        what = f"{code}: {SQLITE_ERRORS.get(base, 'database error')}"
    elif isinstance(exc, OSError):
        what = exc.strerror or "operating system error"  # strerror is errno's fixed text; str(exc) names the path
    else:
        what = CLIENT_ERRORS.get(kind, "database error")
    return SinkError(f"{label}: {kind} ({what})")
