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
    """PostgreSQL's bulk path: a staging table (once per connection), its COPY, and one statement that
    upserts the records and adds the metrics and breakdowns of those it inserted."""

    staging: str
    copy: str
    insert: str


def _each(value: str) -> str:
    """``jsonb_each`` of ``value`` when it is an object, of nothing otherwise (as ``rows`` skips it)."""
    return f"jsonb_each(CASE jsonb_typeof({value}) WHEN 'object' THEN {value} ELSE '{{}}'::jsonb END)"


def staged_sql(prefix: str, schema: str = "") -> Staged:
    """Statements that COPY a batch of record rows into a temporary table and store it from there.

    Only the records travel: their metrics and breakdowns are read back out of the ``data`` JSON by the
    server, for the records the statement inserted (``RETURNING``). A record already stored keeps the rows
    it was stored with, as ``ON CONFLICT DO NOTHING`` did; a new record's rows cannot exist yet (they
    reference it), so they are inserted without a conflict check. Numbers only, booleans excluded, as
    ``rows`` and ``breakdown_rows`` do for SQLite.
    """
    target = f"{schema}.{prefix}" if schema else prefix
    cols = ", ".join(COLUMNS)
    values = ", ".join("data::jsonb" if c == "data" else c for c in COLUMNS)
    text_cols = ", ".join(f"{c} TEXT" for c in COLUMNS)
    stage = f"igrelay_stage_{prefix}records"
    metrics, breakdowns = _each("new.data->'metrics'"), _each("new.data->'breakdowns'")
    # ON COMMIT DELETE ROWS empties it at each commit; prefix and schema passed safe_prefix().
    insert = (
        f"WITH new AS (INSERT INTO {target}records ({cols}) SELECT {values} FROM {stage}"  # nosec B608
        " ON CONFLICT (id) DO NOTHING RETURNING id, data),"
        f" metrics AS (INSERT INTO {target}record_metrics (record_id, name, value)"
        f" SELECT new.id, m.key, m.value::float8 FROM new, {metrics} m"
        " WHERE jsonb_typeof(m.value) = 'number')"
        f" INSERT INTO {target}record_breakdowns (record_id, metric, breakdown, key, value)"
        f" SELECT new.id, m.key, b.key, k.key, k.value::float8 FROM new, {breakdowns} m,"
        f" {_each('m.value')} b, {_each('b.value')} k WHERE jsonb_typeof(k.value) = 'number'"
    )
    return Staged(
        staging=f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ({text_cols}) ON COMMIT DELETE ROWS",
        copy=f"COPY {stage} ({cols}) FROM STDIN",
        insert=insert,
    )


def rows(records: Sequence[Record], with_metrics: bool = True) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Record rows and metric rows for ``records`` (a batch may repeat an id: first one wins); no metric
    rows when ``with_metrics`` is false."""
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
        if with_metrics:
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
