"""``postgresql://user:pass@host/db``: the tables of :mod:`workers.sinks._tables` in PostgreSQL.

psycopg 3 is imported here only, when the sink is used. Each batch is one transaction: ``COPY`` of
the records' JSON into a temporary staging table, then one statement that upserts them
(``ON CONFLICT DO NOTHING``, so a redelivered record is stored once) and adds the metric and
breakdown rows of the records it inserted; the server reads columns, metrics and breakdowns out of
the JSON (``_tables.staged_sql``), so no row is built in Python.
The connection (with its staging tables) is kept for the process's next batch
(:mod:`workers.sinks._reuse`). Tables are created only when missing.
Options: ``schema`` (created if missing), ``table_prefix``.
Failure policy: raise (an unreachable or failing server is retried); errors say the exception type,
SQLSTATE and a fixed description, never the driver's text (libpq quotes URL parts, passwords too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from config.settings import Settings, redact_url
from workers.sinks import Finding, Record, Sink, sink_name
from workers.sinks import _reuse as reuse
from workers.sinks import _tables as tables


class PostgresSink(Sink):
    """Upserts records into PostgreSQL."""

    schemes = ("postgresql", "postgres")
    idempotent = True
    reads_json = True  # the server parses the JSON (its jsonb input reads \u escapes)
    flush_records = 5000  # a transaction each: a backlog of 20,000 rows is 4 commits, not 40

    def __init__(self, url: str, options: Mapping[str, Any], settings: Settings) -> None:
        super().__init__(url, options, settings)
        self.schema = tables.safe_prefix(self.options.get("schema"))
        self.prefix = tables.safe_prefix(self.options.get("table_prefix"))
        self.statements = tables.staged_sql(self.prefix, self.schema)
        self._conn: Any = None

    def _key(self) -> str:
        return f"postgresql:{sink_name(self.url)}:{self.schema}.{self.prefix}"

    def _connect(self) -> Any:
        if self._conn is None:
            self._conn = reuse.take(self._key()) or self._open()
        return self._conn

    def _open(self) -> Any:
        import psycopg  # optional driver: only deployments with a PostgreSQL sink need it

        conn = psycopg.connect(self.url, connect_timeout=10)
        try:
            self._create_tables(conn)
            with conn.transaction():
                # The JSON-reading joins look huge to the planner (it cannot know a record has six metrics),
                # so JIT would compile each batch's statement: about 235 ms, more than the batch takes.
                conn.execute("SET jit = off")
                conn.execute(self.statements.staging)
        except BaseException:
            conn.close()
            raise
        return conn

    def _create_tables(self, conn: Any) -> None:
        """Create the schema and tables unless they exist (checked first: DDL takes catalog locks)."""
        last = self.prefix + tables.LAST_TABLE
        qualified = f"{self.schema}.{last}" if self.schema else last
        with conn.transaction():
            if conn.execute("SELECT to_regclass(%s)", [qualified]).fetchone()[0]:
                return
            if self.schema:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            for statement in tables.ddl(self.prefix, "JSONB", self.schema):
                conn.execute(statement)

    def send(self, records: Sequence[Record]) -> None:
        text = tables.copy_text(records)
        try:
            conn = self._connect()
            with conn.transaction(), conn.cursor() as cur:
                if text:
                    with cur.copy(self.statements.copy) as copy:
                        copy.write(text)
                    cur.execute(self.statements.insert)
        except Exception as exc:
            if not _is_driver_error(exc):
                raise
            self._drop()
            raise tables.driver_error("postgresql sink", exc) from None

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

    def probe(self) -> list[Finding]:
        """Connect and create the tables; psycopg itself is optional."""
        try:
            return super().probe()
        except ImportError:
            return [Finding("problem", "its driver is not installed", "pip install 'igrelay[postgres]'")]

    @classmethod
    def redact(cls, url: str) -> str:
        """Password hidden; the database name kept whole."""
        return redact_url(url, path_chars=None)


def _is_driver_error(exc: Exception) -> bool:
    """True for psycopg's errors (checked by module, so psycopg stays a lazy import)."""
    return type(exc).__module__.startswith("psycopg") or isinstance(exc, OSError)
