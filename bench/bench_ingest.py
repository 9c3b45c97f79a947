"""Receiver benchmark: the webhook under gunicorn (the console on) vs a bare Flask app under the same
gunicorn settings, the 1000-change ack, and the ingest worker's changes/s vs RQ's own no-op job
rate. Loopback only, bounded in time.

    python bench/bench_ingest.py [--seconds 4] [--connections 16] [--rounds 7]

Prints one table; every figure has its baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from redis import Redis

from config import contract

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import start, stop, wait_healthy  # noqa: E402
from igrelay import payloads  # noqa: E402
from igrelay.procs import free_port  # noqa: E402

REDIS_URL = os.environ.get("IGRELAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SECRET = "bench-secret"
# gunicorn from this interpreter, so the benchmark runs without an activated venv.
GUNICORN = [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "config" / "gunicorn.conf.py")]


def start_web(app: str, port: int) -> subprocess.Popen[bytes]:
    """``app`` under gunicorn with igrelay's config on ``port``, once it answers."""
    env = dict(
        os.environ,
        PORT=str(port),
        META_APP_SECRET=SECRET,
        META_VERIFY_TOKEN="bench",
        REDIS_URL=REDIS_URL,
        LOG_LEVEL="INFO",
        WEB_CONCURRENCY=os.environ.get("WEB_CONCURRENCY", "2"),
        PYTHONPATH=str(ROOT),
        # The console on, as a deployment with it has it (bare Flask ignores these).
        IGRELAY_CONSOLE_PASSWORD="bench-console",
        IGRELAY_SECRET_KEY="bench-secret-key-0123456789abcdef",
    )
    proc = start([*GUNICORN, app], env, app.split(":")[0])
    wait_healthy(port, app, proc)
    return proc


def load(url: str, body: bytes, headers: dict[str, str], seconds: float, connections: int) -> dict[str, float]:
    """``connections`` threads posting as fast as answers come, for ``seconds``."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run() -> None:
        session = requests.Session()
        mine = []
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            answer = session.post(url, data=body, headers=headers, timeout=10)
            mine.append(time.perf_counter() - t0)
            if answer.status_code != 200:
                errors[0] += 1
        session.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(connections)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "errors": errors[0],
        "n": len(latencies),
    }


def wrk(url: str, body: bytes, headers: dict[str, str], seconds: float, connections: int) -> dict[str, float]:
    """The same load with wrk (a C load generator that leaves the CPU to the servers)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f"wrk.method = 'POST'\nwrk.body = {json.dumps(body.decode())}\n")
        for key, value in headers.items():
            script.write(f"wrk.headers[{json.dumps(key)}] = {json.dumps(value)}\n")
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, int(seconds))}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)

    def ms(text: str) -> float:
        value = float(text.rstrip("usm"))
        return value / 1000 if text.endswith("us") else value * 1000 if not text.endswith("ms") else value

    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    errors = sum(int(x) for line in out.splitlines() if "Non-2xx" in line for x in line.split()[-1:])
    return {
        "rps": float(lines["Requests/sec:"][1]),
        "p50_ms": ms(lines["50%"][1]),
        "p99_ms": ms(lines["99%"][1]),
        "errors": errors,
        "n": 0,
    }


def median_run(samples: list[dict[str, float]]) -> dict[str, float]:
    """The sample with the median requests/s."""
    return sorted(samples, key=lambda r: r["rps"])[len(samples) // 2]


def bench_web(seconds: float, connections: int, rounds: int) -> list[tuple[str, str, str, str]]:
    body = payloads.encode(payloads.delivery("comments", "17841400000000001", "18111", 3))
    body = body + b" " * max(0, 1024 - len(body))  # a 1 KB delivery
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": payloads.sign(body, SECRET)}
    runs: dict[str, list[dict[str, float]]] = {"bare Flask": [], "igrelay": []}
    run = wrk if shutil.which("wrk") else load
    for _round in range(rounds):  # alternate, so drift on a shared machine hits both alike
        for name, app in (("bare Flask", "bench.bare_app:app"), ("igrelay", "webhook:create_app()")):
            Redis.from_url(REDIS_URL).flushdb()
            port = free_port()
            proc = start_web(app, port)
            try:
                run(f"http://127.0.0.1:{port}/webhook", body, headers, 1.0, connections)  # warm up
                runs[name].append(run(f"http://127.0.0.1:{port}/webhook", body, headers, seconds, connections))
            finally:
                stop(proc)
    # A round can only be slowed down, never sped up, by what it does not measure: another tenant of the
    # shared machine, or gunicorn's accept race handing most of wrk's kept-alive connections to one of
    # the two workers (a round then runs at about half speed; seen here with either app). So the
    # capacity of each is its best round, and the ratio of those is the figure; the rounds' own ratios
    # (each round's two runs are back to back) are shown with their median, so the noise is visible.
    results = {name: max(samples, key=lambda r: r["rps"]) for name, samples in runs.items()}
    bare, ours = results["bare Flask"], results["igrelay"]
    ratios = sorted(o["rps"] / b["rps"] for o, b in zip(runs["igrelay"], runs["bare Flask"], strict=True))
    ratio = ours["rps"] / bare["rps"]
    # A round's p99 is its slowest 1% of a few thousand requests: one scheduling hiccup of the shared
    # machine moves it. The median of the rounds' p99s, with their range, says what is typical.
    p99 = {name: sorted(r["p99_ms"] for r in samples) for name, samples in runs.items()}
    return [
        (
            "signed 1 KB deliveries, req/s (best round)",
            f"{ours['rps']:.0f}",
            f"{bare['rps']:.0f} (bare Flask)",
            f"{ratio:.0%} (target >= 80%); rounds {ratios[0]:.0%}-{ratios[-1]:.0%}, median "
            f"{statistics.median(ratios):.0%}",
        ),
        (
            f"p99 latency, {connections} connections (median of rounds)",
            f"{statistics.median(p99['igrelay']):.1f} ms",
            f"{statistics.median(p99['bare Flask']):.1f} ms",
            f"target < 20 ms; rounds {p99['igrelay'][0]:.1f}-{p99['igrelay'][-1]:.1f} ms",
        ),
        (
            "p50 latency (best round)",
            f"{ours['p50_ms']:.1f} ms",
            f"{bare['p50_ms']:.1f} ms",
            f"errors: {ours['errors']}",
        ),
    ]


def bench_big_ack() -> list[tuple[str, str, str, str]]:
    Redis.from_url(REDIS_URL).flushdb()
    port = free_port()
    proc = start_web("webhook:create_app()", port)
    try:
        body = payloads.encode(payloads.delivery("comments", "17841400000000001", "18111", 1000))
        headers = {"X-Hub-Signature-256": payloads.sign(body, SECRET)}
        session = requests.Session()
        times = []
        for _ in range(60):
            t0 = time.perf_counter()
            assert session.post(f"http://127.0.0.1:{port}/webhook", data=body, headers=headers).status_code == 200
            times.append(1000 * (time.perf_counter() - t0))
        session.close()
    finally:
        stop(proc)
    times = sorted(times[10:])
    return [
        (
            "1000-change delivery acknowledged",
            f"p50 {statistics.median(times):.1f} ms",
            f"{len(body) // 1024} KB body",
            f"p99 {times[int(len(times) * 0.99)]:.1f} ms (target < 50 ms)",
        )
    ]


def bench_worker() -> list[tuple[str, str, str, str]]:
    from config.settings import Settings
    from workers import ingest

    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({"REDIS_URL": REDIS_URL, "IGRELAY_SINKS": f"file://{tmp}/r.jsonl"})
        deliveries, per = 200, 100
        for i in range(deliveries):
            body = payloads.encode(
                payloads.delivery("comments", "17841400000000001", f"1800000000000{i % 50:04d}", per)
            )
            redis.xadd(contract.INBOX, {"b": body, "t": "0"})
        t0 = time.perf_counter()
        result = ingest.drain(redis, settings, consumer="bench")
        ours = sum(result.changes.values()) / (time.perf_counter() - t0)
        if result.dead_letters:  # refused changes cost almost nothing: they would flatter the figure
            raise RuntimeError(f"bench_ingest: {result.dead_letters} deliveries were refused by the drain")
    noop = rq_noop_rate(redis)
    redis.flushdb()
    return [
        (
            "ingest worker, changes/s (one process)",
            f"{ours:.0f}",
            f"{noop:.0f} RQ no-op jobs/s (HerokuWorker)",
            f"{ours / noop:.0f}x (target >= 5000/s)",
        )
    ]


def rq_noop_rate(redis: Redis, jobs: int = 300) -> float:
    from rq import Queue
    from rq.worker import HerokuWorker

    queue = Queue("bench-noop", connection=redis, serializer="rq.serializers.JSONSerializer")
    for _ in range(jobs):
        queue.enqueue("bench.noop.noop", result_ttl=0)
    import bench.noop  # noqa: F401  imported before forking, as igrelay's worker pre-imports its jobs

    worker = HerokuWorker(
        [queue], connection=redis, serializer="rq.serializers.JSONSerializer", log_job_description=False
    )
    t0 = time.perf_counter()
    worker.work(burst=True, logging_level="WARNING")
    return jobs / (time.perf_counter() - t0)  # igrelay's own worker class is the honest baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rows = bench_web(args.seconds, args.connections, args.rounds) + bench_big_ack() + bench_worker()
    print(f"load generator: {'wrk' if shutil.which('wrk') else 'python threads (install wrk for truer numbers)'}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    widths = [max(len(r[i]) for r in rows + [("measure", "igrelay", "baseline", "ratio / target")]) for i in range(4)]
    for row in [("measure", "igrelay", "baseline", "ratio / target"), *rows]:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    print(json.dumps({"rows": rows}), file=sys.stderr)


if __name__ == "__main__":
    main()
