"""One box, web and worker together (the one-dyno case): the highest sustained rate of signed comment deliveries.

The web tier alone first: gunicorn with igrelay's config (WEB_CONCURRENCY 2), wrk posting signed 1 KB
deliveries of one new comment each as fast as answers come; the best of three runs is the baseline.
Then the same web with one `igrelay worker` beside it on the same machine and a SQLite sink, wrk pacing
the same kind of deliveries at a rising fraction of the baseline (each of 32 connections waiting its
share of the interval before each request: with few connections the answers' own latency would slow
the pace below the rate asked for). A rate is sustained when every comment acknowledged has its row in
SQLite within 5 s of the last request and the inbox lag (age of the oldest entry not yet drained) stays
under 5 s throughout; the result is the highest rate achieved at a sustained step. Insights fetches
are left out (a debounce longer than the run): this measures the path of the changes themselves.
Loopback only; about two minutes.

    python bench/bench_onebox.py [--seconds 8] [--connections 8] [--paced-connections 32]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from redis import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import WEB, igrelay_env, start, stop, wait_healthy  # noqa: E402
from config import contract  # noqa: E402
from igrelay import payloads  # noqa: E402
from igrelay.procs import free_port  # noqa: E402

REDIS_URL = os.environ.get("IGRELAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SECRET = "bench-secret"
ACCOUNT = "17841400000000001"
MAX_LAG = 5.0
FRACTIONS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

# wrk sends the pre-signed bodies of BODIES in order, one a request, each connection waiting DELAY ms first.
LUA = """
local bodies, i = {}, 0
for line in io.lines(os.getenv("BODIES")) do
  local sig, body = line:match("^(%S+) (.*)$")
  bodies[#bodies + 1] = {sig, body}
end
local pause = tonumber(os.getenv("DELAY") or "0")
function delay() return pause end
function request()
  i = i % #bodies + 1
  local item = bodies[i]
  return wrk.format("POST", "/webhook", {["Content-Type"] = "application/json", ["X-Hub-Signature-256"] = item[1]},
                    item[2])
end
"""


def write_bodies(path: Path, count: int) -> None:
    """``count`` signed 1 KB deliveries of one new comment each, one ``signature body`` a line."""
    with open(path, "w") as out:
        for i in range(count):
            body = payloads.encode(payloads.delivery("comments", ACCOUNT, f"1810000000{i % 50:04d}", 1))
            body += b" " * max(0, 1024 - len(body))
            out.write(f"{payloads.sign(body, SECRET)} {body.decode()}\n")


def wrk(port: int, bodies: Path, seconds: float, connections: int, rate: float | None) -> tuple[int, float]:
    """Run wrk; (requests answered 2xx, requests/s)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA)
    delay = f"{1000 * connections / rate:.3f}" if rate else "0"
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s", script.name, f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BODIES": str(bodies), "DELAY": delay},
    ).stdout
    os.unlink(script.name)
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    total = int(next(line.split()[0] for line in out.splitlines() if "requests in" in line))
    errors = sum(int(line.split()[-1]) for line in out.splitlines() if "Non-2xx" in line)
    return total - errors, float(lines["Requests/sec:"][1])


def env_for(port: int, db: Path) -> dict[str, str]:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing answers; nothing is fetched in the run
    extra = {"IGRELAY_DEBOUNCE_SECONDS": "3600", "IGRELAY_POLL_INTERVAL": "0", "LOG_LEVEL": "WARNING"}
    return igrelay_env(
        port, REDIS_URL, SECRET, db, nowhere, WEB_CONCURRENCY=os.environ.get("WEB_CONCURRENCY", "2"), **extra
    )


def web_alone(tmp: Path, seconds: float, connections: int) -> float:
    """Requests/s of the web tier with nothing else running: the best of three runs, each on a fresh
    server (a run can only be slowed down by what it does not measure: another tenant of the machine, or
    gunicorn's accept race handing most of wrk's connections to one of the two workers)."""
    bodies = tmp / "alone.txt"
    write_bodies(bodies, 20_000)
    rates = []
    for _ in range(3):
        Redis.from_url(REDIS_URL).flushdb()
        port = free_port()
        web = start(WEB, env_for(port, tmp / "unused.sqlite3"), "web-alone")
        try:
            wait_healthy(port, "web", web)
            wrk(port, bodies, 1, connections, None)  # warm up
            rates.append(wrk(port, bodies, seconds, connections, None)[1])
        finally:
            stop(web)
            Redis.from_url(REDIS_URL).flushdb()
    return max(rates)


def rows(db: Path) -> int:
    try:
        conn = sqlite3.connect(db, timeout=5)
        try:
            return int(conn.execute("SELECT count(*) FROM records WHERE kind = 'webhook_event'").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:  # no table yet
        return 0


def inbox_lag(redis: Redis) -> float:
    """Seconds since the oldest entry still in the inbox was added (0 when it is empty)."""
    first = redis.xrange(contract.INBOX, count=1)
    if not first:
        return 0.0
    entry_id = first[0][0].decode()
    return max(0.0, time.time() - int(entry_id.split("-")[0]) / 1000)


class LagProbe(threading.Thread):
    """The largest inbox lag seen, sampled every 100 ms."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(daemon=True)
        self.redis, self.worst, self.stop = redis, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            self.worst = max(self.worst, inbox_lag(self.redis))


def step(port: int, db: Path, redis: Redis, tmp: Path, rate: float, seconds: float, connections: int) -> dict:
    """One paced run at ``rate``: sustained or not, and what was seen."""
    bodies = tmp / f"step-{rate:.0f}.txt"
    write_bodies(bodies, int(rate * seconds * 1.5) + 100)  # more than wrk can send: no comment repeats
    before = rows(db)
    probe = LagProbe(redis)
    probe.start()
    ok, achieved = wrk(port, bodies, seconds, connections, rate)
    deadline = time.monotonic() + MAX_LAG
    while rows(db) - before < ok and time.monotonic() < deadline:
        time.sleep(0.1)
    stored = rows(db) - before
    probe.stop.set()
    probe.join()
    # wrk counts only the answers it read before stopping; a request in flight at the end is stored too
    return {"achieved": achieved, "sent": ok, "missing": max(0, ok - stored), "lag": probe.worst}


def together(tmp: Path, alone: float, seconds: float, connections: int) -> tuple[dict | None, list[str]]:
    """Web and worker on the box; raise the rate (``connections`` pacing it) until it is no longer sustained."""
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    db = tmp / "records.sqlite3"
    port = free_port()
    env = env_for(port, db)
    web = start(WEB, env, "web")
    worker = start([sys.executable, "-m", "igrelay", "worker"], env, "worker")
    best, notes = None, []
    try:
        wait_healthy(port, "web", web)
        warm = tmp / "warm.txt"
        write_bodies(warm, 50)
        wrk(port, warm, 1, 2, 50)
        deadline = time.monotonic() + 60
        while rows(db) < 40 and time.monotonic() < deadline:  # the worker is up and the sink has its table
            time.sleep(0.2)
        for fraction in FRACTIONS:
            result = step(port, db, redis, tmp, alone * fraction, seconds, connections)
            sustained = result["missing"] == 0 and result["lag"] < MAX_LAG
            notes.append(
                f"paced at {fraction:.0%} of the web alone: {result['achieved']:.0f} req/s, "
                f"max inbox lag {result['lag']:.1f} s, {result['missing']} of {result['sent']} not in SQLite "
                f"after {MAX_LAG:.0f} s -> {'sustained' if sustained else 'NOT sustained'}"
            )
            if not sustained:
                break
            if best is None or result["achieved"] > best["achieved"]:  # the pace is wrk's, the rate the box's
                best = result
            deadline = time.monotonic() + 30
            while inbox_lag(redis) > 0 and time.monotonic() < deadline:  # start the next step level
                time.sleep(0.2)
    finally:
        stop(web)
        stop(worker)
        redis.flushdb()
    return best, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=8, help="for the web alone, as fast as it answers")
    parser.add_argument("--paced-connections", type=int, default=32, help="for the paced runs")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("skipped: this benchmark paces its load with wrk, which is not installed (apt-get install wrk)")
        return
    tmp = Path(tempfile.mkdtemp(prefix="igrelay-onebox-"))
    alone = web_alone(tmp, args.seconds, args.connections)
    best, notes = together(tmp, alone, args.seconds, args.paced_connections)
    rate = best["achieved"] if best else 0.0
    for note in notes:
        print(note)
    print("measure | igrelay | baseline | ratio / target")
    print(
        f"signed comment deliveries/s sustained, web + worker on one box | {rate:.0f} | "
        f"{alone:.0f} (web tier alone) | {rate / alone:.0%} (target >= 50%)"
    )
    print(f"load average at the end | {os.getloadavg()[0]:.1f} | {os.cpu_count()} CPUs | shared machine: noise")


if __name__ == "__main__":
    main()
