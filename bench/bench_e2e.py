"""End to end, as the Procfile runs it: webhook 200 -> record in the SQLite sink, and memory.

A real gunicorn web, one `igrelay worker` and the sandbox Graph API (so comments also trigger
insights fetches, as in production), all on loopback. Deliveries of one comment each are sent at
a steady rate; each comment's `webhook_event` record is timed from the webhook's 200 to its row
in SQLite (the debounce delays only the insights fetch, not this record). Peak RSS of every web
and worker process is sampled from /proc during the load. Baseline: a bare Redis `XADD` seen by
a blocking `XREAD` in another client, the floor for any design that stores before answering.

    python bench/bench_e2e.py [--deliveries 400] [--rates 40,400] [--changes 100000]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from redis import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import WEB, igrelay_env, start, stop, wait_healthy  # noqa: E402
from igrelay import payloads  # noqa: E402
from igrelay.procs import free_port  # noqa: E402
from igrelay.sandbox import Sandbox  # noqa: E402

REDIS_URL = os.environ.get("IGRELAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SECRET = "bench-secret"


def group_rss_kb(pid: int) -> list[int]:
    """VmRSS (kB) of every process in ``pid``'s process group."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != pid:
                continue
            with open(f"/proc/{entry}/status") as fh:
                out += [int(line.split()[1]) for line in fh if line.startswith("VmRSS:")]
        except (OSError, ProcessLookupError):
            continue
    return out


class Peak(threading.Thread):
    """Samples the largest single-process RSS of some process groups every 100 ms."""

    def __init__(self, groups: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.groups, self.peak, self.stop = groups, dict.fromkeys(groups, 0), threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            for name, pgid in self.groups.items():
                self.peak[name] = max([self.peak[name], *group_rss_kb(pgid)])


def redis_baseline(n: int = 400) -> list[float]:
    """Latency of a bare XADD seen by a blocking XREAD in another thread: the floor for any design."""
    redis = Redis.from_url(REDIS_URL)
    seen: list[float] = []
    sent: list[float] = []

    def reader() -> None:
        last = "$"
        reader_redis = Redis.from_url(REDIS_URL)
        while len(seen) < n:
            for _stream, entries in reader_redis.xread({"bench:e2e": last}, block=1000) or []:
                for entry_id, _ in entries:
                    seen.append(time.perf_counter())
                    last = entry_id
        reader_redis.close()

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.2)
    for _ in range(n):
        sent.append(time.perf_counter())
        redis.xadd("bench:e2e", {"b": b"x" * 300})
        time.sleep(0.005)
    thread.join(30)
    redis.delete("bench:e2e")
    return sorted(1000 * (b - a) for a, b in zip(sent, seen, strict=False))


def run(deliveries: int, rates: list[float], changes: int) -> list[tuple[str, str, str, str]]:
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    tmp = Path(tempfile.mkdtemp())
    db = tmp / "records.sqlite3"
    port = free_port()
    rows: list[tuple[str, str, str, str]] = []
    floor = redis_baseline()
    with Sandbox() as sandbox:
        tokens = ",".join(f"{a}={sandbox.token_for(a)}" for a in sandbox.accounts)
        extra = {"IGRELAY_DEBOUNCE_SECONDS": "2", "LOG_LEVEL": "INFO"}
        env = igrelay_env(port, REDIS_URL, SECRET, db, sandbox.url, IG_ACCESS_TOKENS=tokens, **extra)
        web = start(WEB, env, "web")
        worker = start([sys.executable, "-m", "igrelay", "worker"], env, "worker")
        peak = Peak({"web": web.pid, "worker": worker.pid})
        arrived: dict[str, float] = {}
        done = threading.Event()
        watcher = threading.Thread(target=watch, args=(db, arrived, done))
        try:
            wait_healthy(port, "web", web)
            watcher.start()  # rows are timed while deliveries are still being sent
            warm_up(port, sandbox.accounts[0], arrived)
            peak.start()
            account = sandbox.accounts[0]
            for rate in rates:
                n = deliveries if rate == rates[0] else int(deliveries * rate / rates[0])
                acked = send(port, account, n, rate)
                wait_arrived(acked, arrived, 60)
                rows.append(latency_row(acked, arrived, rate, floor))
            rows += memory_rows(port, account, changes, db, peak)
        finally:
            done.set()
            peak.stop.set()
            stop(web)
            stop(worker)
            watcher.join(10)
    redis.flushdb()
    return rows


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))]


def latency_row(acked: dict[str, float], arrived: dict[str, float], rate: float, floor: list[float]) -> tuple:
    latencies = sorted(1000 * (arrived[c] - acked[c]) for c in acked if c in arrived)
    target = "p50 < 30 ms, p99 < 150 ms" if rate <= 40 else "p99 < 500 ms"
    return (
        f"webhook 200 -> SQLite row, {len(acked)} deliveries at {rate:.0f}/s",
        f"p50 {pct(latencies, 0.5):.0f} ms, p99 {pct(latencies, 0.99):.0f} ms",
        f"p50 {pct(floor, 0.5):.1f} ms (bare XADD -> XREAD)",
        f"{len(acked) - len(latencies)} records missing; target {target}",
    )


def memory_rows(port: int, account: str, changes: int, db: Path, peak: Peak) -> list[tuple[str, str, str, str]]:
    """Peak RSS while ``changes`` comments go through in deliveries of 100, as fast as the web takes them."""
    before = row_count(db)
    per = 100
    acked = send(port, account, changes // per, 1000.0, per=per, threads=2)
    deadline = time.monotonic() + 300
    while row_count(db) - before < len(acked) and time.monotonic() < deadline:
        time.sleep(0.5)
    stored = row_count(db) - before
    return [
        ("peak RSS, one web process (gunicorn worker)", f"{peak.peak['web'] / 1024:.0f} MB", "", "under load"),
        (
            f"peak RSS, one worker process, {changes:,} changes",
            f"{peak.peak['worker'] / 1024:.0f} MB",
            "",
            f"target < 80 MB; {len(acked) - stored} of {len(acked):,} missing",
        ),
    ]


def row_count(db: Path) -> int:
    conn = sqlite3.connect(db, timeout=5)
    try:
        return int(conn.execute("SELECT count(*) FROM records WHERE kind = 'webhook_event'").fetchone()[0])
    finally:
        conn.close()


def warm_up(port: int, account: str, arrived: dict[str, float]) -> None:
    """A few deliveries through to SQLite first: the worker has started and the sink made its tables."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        acked = send(port, account, 5, 20.0)
        if wait_arrived(acked, arrived, 5):
            time.sleep(1)
            return
    raise RuntimeError("the worker did not deliver the warm-up comments within 60 s")


def wait_arrived(acked: dict[str, float], arrived: dict[str, float], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not set(acked) <= set(arrived):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def send(port: int, account: str, deliveries: int, rate: float, per: int = 1, threads: int = 0) -> dict[str, float]:
    """POST deliveries of ``per`` comments at ``rate``/s (paced to a schedule, from a few threads when
    one cannot keep up); comment id -> time its 200 arrived."""
    acked: dict[str, float] = {}
    threads = threads or max(1, int(rate // 100) + 1)
    started = time.monotonic() + 0.05

    def sender(first: int) -> None:
        session = requests.Session()
        for i in range(first, deliveries, threads):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            payload = payloads.delivery("comments", account, f"1800000000000{i % 20:04d}", per)
            comments = [c["value"]["id"] for c in payload["entry"][0]["changes"]]
            body = payloads.encode(payload)
            answer = session.post(
                f"http://127.0.0.1:{port}/webhook",
                data=body,
                headers={"X-Hub-Signature-256": payloads.sign(body, SECRET)},
                timeout=10,
            )
            if answer.status_code == 200:
                now = time.time()
                for comment in comments:
                    acked[comment] = now
        session.close()

    pool = [threading.Thread(target=sender, args=(k,)) for k in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return acked


def watch(db: Path, arrived: dict[str, float], done: threading.Event) -> None:
    """Poll SQLite every 10 ms until ``done``; fills comment id -> time its record was first seen."""
    last = 0
    while not done.is_set():
        if db.exists():
            try:
                conn = sqlite3.connect(db, timeout=1)
                rows = conn.execute(
                    "SELECT rowid, json_extract(data, '$.event.comment_id') FROM records"
                    " WHERE kind = 'webhook_event' AND rowid > ?",
                    (last,),
                ).fetchall()
                conn.close()
            except sqlite3.OperationalError:
                rows = []
            now = time.time()
            for rowid, comment in rows:
                arrived.setdefault(comment, now)
                last = max(last, rowid)
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=400, help="at the first rate; more at faster ones")
    parser.add_argument("--rates", default="40,400", help="deliveries/s, comma-separated")
    parser.add_argument("--changes", type=int, default=100_000, help="comments in the memory run")
    args = parser.parse_args()
    rows = run(args.deliveries, [float(r) for r in args.rates.split(",")], args.changes)
    head = ("measure", "igrelay", "baseline", "note")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for row in [head, *rows]:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
