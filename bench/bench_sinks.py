"""Sink throughput from a backlog, each against its baseline measured in the same run.

    python bench/bench_sinks.py

SQLite and PostgreSQL: records stored per second through the delivery path, from a backlog of
40 drains' worth of records (500 each) waiting in the sink's outbox: each delivery job takes
what waits, up to the sink's ``flush_records``, loads the sink, sends, and settles its claim, as
``workers.jobs.deliver`` does in the worker (RQ's own per-job cost is left out: the end-to-end
benchmark has it). The baseline: ``executemany`` of the same ``INSERT ... ON CONFLICT``
statements into the same two tables (``records`` and ``record_metrics``) in one transaction,
rows built beforehand. Each is run five times, alternating, on fresh tables; the medians are
compared. Targets: SQLite >= 0.8x, PostgreSQL >= 1.5x the baseline. HTTP: deliveries per
second from one process to a local receiver that answers in 100 ms, against one request at a
time. Loopback only; a PostgreSQL on 127.0.0.1:5432 is used when reachable (its schemas are
dropped afterwards), and the benchmark Redis database (``IGRELAY_BENCH_REDIS_URL``, default 14)
is emptied. Bounded to well under two minutes.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from redis import Redis  # noqa: E402

from config import contract  # noqa: E402
from config.settings import Settings  # noqa: E402
from workers import delivery, sinks  # noqa: E402
from workers import records as R  # noqa: E402
from workers.sinks import _tables as tables  # noqa: E402
from workers.sinks import load  # noqa: E402

BATCH = 500  # records per drain in the backlog (an HTTP delivery job's size)
ROUNDS = 5
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("IGRELAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SECRET = "whsec_" + "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5"


def backlog(n: int) -> list[dict]:
    """``n`` media insight records with a handful of metrics each."""
    metrics = {"reach": 1200, "likes": 40, "comments": 3, "saved": 7, "shares": 2, "views": 5000}
    return [
        R.media_insights("17841", {"id": str(i), "media_product_type": "REELS"}, {**metrics, "reach": i}, {}, "poll")
        for i in range(n)
    ]


def metric_rows(records: list[dict]) -> list[tuple]:
    """The baseline's ``(record_id, name, value)`` rows: each record's numeric metrics, row by row (the
    sinks have the database read them out of the stored JSON instead)."""
    return [
        (str(r["id"]), name, float(value))
        for r in records
        for name, value in r["metrics"].items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]


def metrics_sql(prefix: str, mark: str, schema: str = "") -> str:
    """The baseline's upsert of ``metric_rows`` into ``record_metrics``."""
    table = f"{schema}.{prefix}record_metrics" if schema else f"{prefix}record_metrics"
    return (
        f"INSERT INTO {table} (record_id, name, value) VALUES ({mark}, {mark}, {mark})"
        " ON CONFLICT (record_id, name) DO NOTHING"
    )


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def through_delivery(redis: Redis, url: str, options: dict, records: list[dict]) -> float:
    """Seconds for delivery jobs to store ``records``, waiting in the sink's outbox as drains left them."""
    settings = Settings(sink_secret=SECRET, sinks=(url,), config={"sinks": {"bench": {"url": url, **options}}})
    # Tables and the connection made first, as the baseline's are: a worker makes them once, at its first job.
    sink = sinks.load(url, options, settings)
    sink.probe()
    sink.close()
    redis.flushdb()
    for i in range(0, len(records), BATCH):
        delivery.emit(redis, settings, records[i : i + BATCH])
    outbox = contract.outbox("bench")
    start = time.perf_counter()
    while redis.exists(outbox):
        delivery.deliver(redis, settings, "bench")
    seconds = time.perf_counter() - start
    redis.flushdb()
    return seconds


def through_sink(url: str, options: dict, records: list[dict], settings: Settings) -> float:
    """Seconds to send ``records`` in 500-record batches, a fresh sink each (the HTTP sink's way)."""

    def run() -> None:
        for i in range(0, len(records), BATCH):
            sink = load(url, options, settings)
            try:
                sink.send(records[i : i + BATCH])
            finally:
                sink.close()

    return timed(run)


def sqlite_bench(redis: Redis, records: list[dict], tmp: str) -> tuple[float, float]:
    """Median seconds through the SQLite sink and for its baseline, alternating on fresh files."""
    rows, metrics = tables.rows(records), metric_rows(records)
    upsert, upsert_metrics = tables.insert_sql("", "?"), metrics_sql("", "?")
    sink_times, base_times = [], []
    for n in range(ROUNDS):
        db = sqlite3.connect(os.path.join(tmp, f"baseline{n}.sqlite3"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        for statement in tables.ddl("", "TEXT"):
            db.execute(statement)

        def baseline(db: sqlite3.Connection = db) -> None:
            db.execute("BEGIN")
            db.executemany(upsert, rows)
            db.executemany(upsert_metrics, metrics)
            db.execute("COMMIT")

        base_times.append(timed(baseline))
        db.close()
        sink_times.append(through_delivery(redis, f"sqlite:///{tmp}/sink{n}.sqlite3", {}, records))
    return statistics.median(sink_times), statistics.median(base_times)


def settle(conn: Any) -> None:
    """Write out what the last round left in PostgreSQL's buffers (``CHECKPOINT``, for superusers), so
    each timed run starts from the same state instead of paying for the one before it."""
    try:
        conn.execute("CHECKPOINT")
    except Exception:  # noqa: BLE001 - not a superuser: the medians absorb it
        pass


def postgres_bench(redis: Redis, records: list[dict]) -> tuple[float, float] | None:
    """Median seconds through the PostgreSQL sink and for its baseline, alternating on fresh schemas."""
    try:
        import psycopg

        conn = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - no server: skip the row
        print(f"(postgresql skipped: {type(exc).__name__})")
        return None
    rows, metrics = tables.rows(records), metric_rows(records)
    schemas: list[str] = []
    sink_times, base_times = [], []
    try:
        for _round in range(ROUNDS):
            schema = f"igrelay_bench_{uuid.uuid4().hex[:8]}"
            schemas.append(schema)
            settle(conn)
            sink_times.append(through_delivery(redis, PG_URL, {"schema": schema}, records))
            upsert, upsert_metrics = tables.insert_sql("base_", "%s", schema), metrics_sql("base_", "%s", schema)
            for statement in tables.ddl("base_", "JSONB", schema):
                conn.execute(statement)

            def baseline(upsert: str = upsert, upsert_metrics: str = upsert_metrics) -> None:
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(upsert, rows)
                    cur.executemany(upsert_metrics, metrics)

            settle(conn)
            base_times.append(timed(baseline))
        return statistics.median(sink_times), statistics.median(base_times)
    finally:
        for schema in schemas:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.close()


class SlowHandler(BaseHTTPRequestHandler):
    """Answers 200 after 100 ms."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length") or 0))
        time.sleep(0.1)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


def http_bench(n: int, settings: Settings) -> tuple[float, float, int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    server.daemon_threads = True
    server.request_queue_size = 128
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    records = backlog(n)
    try:
        sink_time = through_sink(url, {"allow_private": True}, records, settings)
        sequential = load(url, {"allow_private": True, "concurrency": 1}, settings)
        try:
            base = timed(lambda: sequential.send(records[:20]))
        finally:
            sequential.close()
    finally:
        server.shutdown()
        server.server_close()
    return sink_time, base, 20


def main() -> None:
    settings = Settings(sink_secret=SECRET, sink_allow_private=True)
    redis = Redis.from_url(REDIS_URL)
    n = 20_000
    records = backlog(n)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        sink_s, base_s = sqlite_bench(redis, records, tmp)
        out.append(("sqlite", n, sink_s, n / sink_s, n / base_s, "0.8x"))
    pg = postgres_bench(redis, records)
    if pg:
        out.append(("postgresql", n, pg[0], n / pg[0], n / pg[1], "1.5x"))
    http_n = 1000
    sink_s, base_s, base_n = http_bench(http_n, settings)
    out.append(("http (100 ms receiver)", http_n, sink_s, http_n / sink_s, base_n / base_s, "50/s"))
    print(f"{'sink':<24}{'records':>9}{'seconds':>9}{'per second':>12}{'baseline/s':>12}{'ratio':>8}  target")
    for name, count, seconds, rate, base, target in out:
        goal = float(target.rstrip("x/s"))  # "0.8x": a ratio to the baseline; "50/s": a rate
        met = "met" if (rate / base if target.endswith("x") else rate) >= goal else "NOT met"
        print(f"{name:<24}{count:>9}{seconds:>9.2f}{rate:>12,.0f}{base:>12,.0f}{rate / base:>7.2f}x  >= {target} {met}")
    print(f"(SQL rows: medians of {ROUNDS} alternating rounds; HTTP: one round)")


if __name__ == "__main__":
    main()
