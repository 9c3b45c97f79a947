"""Backfill beside live work: 2,000 media at 100 ms Graph latency, while live comments keep flowing.

A real gunicorn web, two `igrelay worker` processes and the sandbox Graph API answering every call
after 100 ms, on loopback. First a stream of one-comment deliveries alone: each comment's
`webhook_event` record timed from the webhook's 200 to its row in SQLite. Then `igrelay backfill`
of an account with 2,000 media (and 90 days of account insights) while the same stream runs again.
Targets: backfill >= 50 media/s, and the live p99 within 2x of its value without backfill.

    python bench/bench_backfill.py [--media 2000] [--deliveries 300] [--rate 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from redis import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_e2e import send, watch  # noqa: E402
from bench.procs import WEB, igrelay_env, start, stop, wait_healthy  # noqa: E402
from config import contract  # noqa: E402
from igrelay.procs import free_port  # noqa: E402
from igrelay.sandbox import Sandbox, demo_data  # noqa: E402

REDIS_URL = os.environ.get("IGRELAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SECRET = "bench-secret"
LATENCY = 0.1


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def live(port: int, account: str, db: Path, deliveries: int, rate: float) -> list[float]:
    """Latencies (ms) of a stream of comment deliveries, webhook 200 -> SQLite row."""
    arrived: dict[str, float] = {}
    done = threading.Event()
    watcher = threading.Thread(target=watch, args=(db, arrived, done))
    watcher.start()
    acked = send(port, account, deliveries, rate)
    deadline = time.monotonic() + 60
    while not set(acked) <= set(arrived) and time.monotonic() < deadline:
        time.sleep(0.05)
    done.set()
    watcher.join(10)
    return sorted(1000 * (arrived[c] - acked[c]) for c in acked if c in arrived)


def run(media: int, deliveries: int, rate: float) -> list[tuple[str, str, str]]:
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    db = Path(tempfile.mkdtemp()) / "records.sqlite3"
    port = free_port()
    with Sandbox(demo_data(1, history=0), latency=LATENCY) as sandbox:
        account = sandbox.accounts[0]
        sandbox.add_history(account, media, days=80)
        tokens = f"{account}={sandbox.token_for(account)}"
        extra = {"IGRELAY_DEBOUNCE_SECONDS": "2", "IGRELAY_POLL_INTERVAL": "0", "LOG_LEVEL": "WARNING"}
        env = igrelay_env(port, REDIS_URL, SECRET, db, sandbox.url, IG_ACCESS_TOKENS=tokens, **extra)
        procs = [start(WEB, env, "web")]
        procs += [start([sys.executable, "-m", "igrelay", "worker"], env, f"worker {n}") for n in (1, 2)]
        try:
            wait_healthy(port, "web", procs[0])
            alone = live(port, account, db, deliveries, rate)
            began = time.monotonic()
            cli = [sys.executable, "-m", "igrelay", "backfill", "--account", account, "--since", "90d"]
            subprocess.run(cli, env=env, check=True, capture_output=True)
            during = live(port, account, db, deliveries, rate)
            media_s, total_s, found = _wait_backfill(redis, account, began, media)
        finally:
            for proc in procs:
                stop(proc)
    redis.flushdb()
    return [
        (
            "live comments alone",
            f"p50 {pct(alone, 0.5):.0f} ms, p99 {pct(alone, 0.99):.0f} ms",
            f"{len(alone)} records",
        ),
        (
            "live comments during backfill",
            f"p50 {pct(during, 0.5):.0f} ms, p99 {pct(during, 0.99):.0f} ms",
            f"p99 {pct(during, 0.99) / pct(alone, 0.99):.2f}x alone (target <= 2x)",
        ),
        (
            f"backfill of {found} media at {LATENCY * 1000:.0f} ms latency, 2 workers",
            f"{found / media_s:.0f} media/s ({media_s:.1f} s)",
            f"target >= 50 media/s; with 90 days of account insights {total_s:.1f} s",
        ),
    ]


def _wait_backfill(redis: Redis, account: str, began: float, media: int) -> tuple[float, float, int]:
    """(seconds until every media was fetched, seconds until the whole backfill finished, media found)."""
    media_at = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = {k.decode(): v.decode() for k, v in redis.hgetall(contract.backfill(account)).items()}
        if media_at is None and state.get("listed") == "1":
            media_at = time.monotonic() - began
        if state.get("finished_at"):
            return media_at or time.monotonic() - began, time.monotonic() - began, int(state["media_found"])
        time.sleep(0.1)
    raise SystemExit(f"backfill did not finish in 10 min: {state}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=int, default=2000)
    parser.add_argument("--deliveries", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    rows = run(args.media, args.deliveries, args.rate)
    print("measure | value | note")
    for row in rows:
        print(" | ".join(row))


if __name__ == "__main__":
    main()
