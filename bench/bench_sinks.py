"""Sink throughput from a backlog, each against its baseline measured in the same run.

    python bench/bench_sinks.py

SQLite and PostgreSQL: records stored per second by the sink (a fresh sink per 500-record batch,
as each delivery job loads one, in one process), against the baseline: ``executemany`` of the
same ``INSERT ... ON CONFLICT`` statements into the same two tables (``records`` and
``record_metrics``) in one transaction, rows built beforehand. Targets: SQLite >= 0.8x,
PostgreSQL >= 1.5x the baseline. HTTP: deliveries per second from one process to a local receiver that answers in
100 ms, against one request at a time. Loopback only; a PostgreSQL on 127.0.0.1:5432 is used
when reachable (its schema is dropped afterwards). Bounded to well under two minutes.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from config.settings import Settings  # noqa: E402
from workers import records as R  # noqa: E402
from workers.sinks import _tables as tables  # noqa: E402
from workers.sinks import load  # noqa: E402

BATCH = 500
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def backlog(n: int) -> list[dict]:
    """``n`` media insight records with a handful of metrics each."""
    metrics = {"reach": 1200, "likes": 40, "comments": 3, "saved": 7, "shares": 2, "views": 5000}
    return [
        R.media_insights("17841", {"id": str(i), "media_product_type": "REELS"}, {**metrics, "reach": i}, {}, "poll")
        for i in range(n)
    ]


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def through_sink(url: str, options: dict, records: list[dict], settings: Settings) -> float:
    """Seconds to store ``records`` the way delivery jobs do: one sink per batch."""

    def run() -> None:
        for i in range(0, len(records), BATCH):
            sink = load(url, options, settings)
            try:
                sink.send(records[i : i + BATCH])
            finally:
                sink.close()

    return timed(run)


def sqlite_bench(records: list[dict], settings: Settings, tmp: str) -> tuple[float, float]:
    rows, metrics = tables.rows(records)
    path = os.path.join(tmp, "baseline.sqlite3")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    for statement in tables.ddl("", "TEXT"):
        db.execute(statement)
    upsert, upsert_metrics = tables.insert_sql("", "?")

    def baseline() -> None:
        db.execute("BEGIN")
        db.executemany(upsert, rows)
        db.executemany(upsert_metrics, metrics)
        db.execute("COMMIT")

    base = timed(baseline)
    db.close()
    return through_sink(f"sqlite:///{tmp}/sink.sqlite3", {}, records, settings), base


def postgres_bench(records: list[dict], settings: Settings) -> tuple[float, float] | None:
    try:
        import psycopg

        conn = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - no server: skip the row
        print(f"(postgresql skipped: {type(exc).__name__})")
        return None
    schema = f"igrelay_bench_{uuid.uuid4().hex[:8]}"
    try:
        sink_time = through_sink(PG_URL, {"schema": schema}, records, settings)
        rows, metrics = tables.rows(records)
        upsert, upsert_metrics = tables.insert_sql("base_", "%s", schema)
        for statement in tables.ddl("base_", "JSONB", schema):
            conn.execute(statement)

        def baseline() -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(upsert, rows)
                cur.executemany(upsert_metrics, metrics)

        return sink_time, timed(baseline)
    finally:
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
    settings = Settings(sink_secret="whsec_" + "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5", sink_allow_private=True)
    n = 20_000
    records = backlog(n)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        sink_s, base_s = sqlite_bench(records, settings, tmp)
        out.append(("sqlite", n, sink_s, n / sink_s, n / base_s, "0.8x"))
    pg = postgres_bench(records, settings)
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


if __name__ == "__main__":
    main()
