"""Not a sink: the rows a record becomes in the SQL sinks' tables (the layout is ``config.tables``),
and how their drivers' errors are reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from config.tables import COLUMNS as COLUMNS
from config.tables import LAST_TABLE as LAST_TABLE
from config.tables import ddl as ddl
from config.tables import safe_prefix as safe_prefix
from workers.sinks import Record, SinkError, as_json


def insert_sql(prefix: str, mark: str, schema: str = "") -> str:
    """The upsert of ``rows`` with ``mark`` as the placeholder (``?`` or ``%s``)."""
    prefix = f"{schema}.{prefix}" if schema else prefix
    marks = ", ".join([mark] * len(COLUMNS))
    # prefix and schema passed safe_prefix(); values go as parameters (hence the nosec).
    return f"INSERT INTO {prefix}records ({', '.join(COLUMNS)}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING"  # nosec B608


# Both SQL sinks store a record's row only; the server then reads its metrics and breakdowns out of its
# ``data`` JSON, for the records just inserted. A record stored before keeps the rows it was stored with;
# a new record's rows cannot exist yet (they reference it), so they need no conflict check. Numbers only
# (JSON booleans and text are left out). Six metrics a record were six rows to build, bind and check.


def sqlite_derived_sql(prefix: str) -> tuple[str, str]:
    """SQLite: the metric and breakdown inserts for the records whose rowid is above ``?`` (the largest
    before the batch: SQLite gives new rows the next rowids)."""
    number = "IN ('integer', 'real')"

    def each(value: str, kind: str) -> str:
        return f"json_each(CASE WHEN {kind} = 'object' THEN {value} ELSE '{{}}' END)"

    # prefix passed safe_prefix() (hence the nosec).
    return (
        f"INSERT INTO {prefix}record_metrics (record_id, name, value)"  # nosec B608
        f" SELECT r.id, m.key, m.value FROM {prefix}records r, json_each(r.data, '$.metrics') m"
        f" WHERE r.rowid > ? AND json_type(r.data, '$.metrics') = 'object' AND m.type {number}",
        f"INSERT INTO {prefix}record_breakdowns (record_id, metric, breakdown, key, value)"  # nosec B608
        f" SELECT r.id, m.key, b.key, k.key, k.value FROM {prefix}records r, json_each(r.data, '$.breakdowns') m,"
        f" {each('m.value', 'm.type')} b, {each('b.value', 'b.type')} k"
        f" WHERE r.rowid > ? AND json_type(r.data, '$.breakdowns') = 'object' AND k.type {number}",
    )


@dataclass(frozen=True)
class Staged:
    """PostgreSQL's bulk path: a staging table (once per connection), its COPY, and one statement that
    upserts the records and adds the metrics and breakdowns of those it inserted."""

    staging: str
    copy: str
    insert: str


def _each(value: str) -> str:
    """``jsonb_each`` of ``value`` when it is an object, of nothing otherwise."""
    return f"jsonb_each(CASE jsonb_typeof({value}) WHEN 'object' THEN {value} ELSE '{{}}'::jsonb END)"


def staged_sql(prefix: str, schema: str = "") -> Staged:
    """PostgreSQL: COPY a batch of records' JSON into a temporary table, then one statement upserts them
    (their columns read out of the JSON, as ``rows`` reads them out of the dict) and inserts the metrics
    and breakdowns of those it inserted (``RETURNING``). A batch repeating an id stores the first one."""
    target = f"{schema}.{prefix}" if schema else prefix
    cols = ", ".join(COLUMNS)
    values = ", ".join("d" if c == "data" else f"d->>'{c}'" for c in COLUMNS)
    stage = f"igrelay_stage_{prefix}records"
    metrics, breakdowns = _each("new.data->'metrics'"), _each("new.data->'breakdowns'")
    # ON COMMIT DELETE ROWS empties it at each commit; prefix and schema passed safe_prefix().
    insert = (
        f"WITH new AS (INSERT INTO {target}records ({cols})"  # nosec B608
        # OFFSET 0 keeps the subquery whole: pulled up, its cast would parse the JSON once a column.
        f" SELECT {values} FROM (SELECT data::jsonb AS d FROM {stage} OFFSET 0) staged"
        " ON CONFLICT (id) DO NOTHING RETURNING id, data),"
        f" metrics AS (INSERT INTO {target}record_metrics (record_id, name, value)"
        f" SELECT new.id, m.key, m.value::float8 FROM new, {metrics} m"
        " WHERE jsonb_typeof(m.value) = 'number')"
        f" INSERT INTO {target}record_breakdowns (record_id, metric, breakdown, key, value)"
        f" SELECT new.id, m.key, b.key, k.key, k.value::float8 FROM new, {breakdowns} m,"
        f" {_each('m.value')} b, {_each('b.value')} k WHERE jsonb_typeof(k.value) = 'number'"
    )
    return Staged(
        staging=f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} (data TEXT) ON COMMIT DELETE ROWS",
        copy=f"COPY {stage} (data) FROM STDIN",
        insert=insert,
    )


def copy_text(records: Sequence[Record]) -> str:
    """``records`` as COPY's text format, one JSON document a line. Compact JSON holds no raw tab,
    newline or carriage return (it escapes them), so only backslashes need escaping."""
    return "".join(as_json(r).replace("\\", "\\\\") + "\n" for r in records)


def rows(records: Sequence[Record]) -> list[tuple[Any, ...]]:
    """The ``records`` rows of ``records`` (a batch may repeat an id: first one wins)."""
    seen: set[str] = set()
    out: list[tuple[Any, ...]] = []
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
                as_json(r),
            )
        )
    return out


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
