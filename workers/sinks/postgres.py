"""``postgresql://user:pass@host/db``: the tables of :mod:`workers.sinks._tables` in PostgreSQL.

psycopg 3 is imported here only, when the sink is used. Each batch is one transaction of three
``executemany`` upserts (``ON CONFLICT (id) DO NOTHING``), which psycopg pipelines, so a batch
is not a round trip per row (measured faster here than COPY to staging tables or ``unnest``
arrays), and a redelivered record is stored once. Tables are created only when missing.
Options: ``schema`` (created if missing), ``table_prefix``.
Failure policy: raise (an unreachable or failing server is retried); errors never carry the URL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from config.logs import redact
from config.settings import Settings, redact_url
from workers.sinks import Finding, Record, Sink, SinkError
from workers.sinks import _tables as tables


class PostgresSink(Sink):
    """Upserts records into PostgreSQL."""

    schemes = ("postgresql", "postgres")
    idempotent = True

    def __init__(self, url: str, options: Mapping[str, Any], settings: Settings) -> None:
        super().__init__(url, options, settings)
        self.schema = tables.safe_prefix(self.options.get("schema"))
        self.prefix = tables.safe_prefix(self.options.get("table_prefix"))
        self.upserts = (
            *tables.insert_sql(self.prefix, "%s", self.schema),
            tables.breakdowns_sql(self.prefix, "%s", self.schema),
        )
        self._conn: Any = None

    def _connect(self) -> Any:
        if self._conn is None:
            import psycopg  # optional driver: only deployments with a PostgreSQL sink need it

            conn = psycopg.connect(self.url, connect_timeout=10)
            try:
                self._create_tables(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

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
        rows, metrics = tables.rows(records)
        try:
            conn = self._connect()
            with conn.transaction(), conn.cursor() as cur:
                for sql, batch in zip(self.upserts, (rows, metrics, tables.breakdown_rows(records)), strict=True):
                    if batch:
                        cur.executemany(sql, batch)
        except Exception as exc:
            if not _is_driver_error(exc):
                raise
            self.close()
            raise SinkError(f"postgresql sink: {type(exc).__name__}: {_first_line(exc)}") from None

    def close(self) -> None:
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


def _first_line(exc: Exception) -> str:
    """The first line of a driver message, scrubbed (it may name hosts and users, never passwords)."""
    return redact((str(exc).splitlines() or [""])[0][:200])
