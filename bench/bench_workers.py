"""Workers scale out: media refreshes/s at 100 ms Graph latency with 1, 2 and 4 worker processes.

The sandbox Graph API (answering every call after 100 ms) and a private redis-server on loopback; the
same due refreshes are dispatched for each run, then N ``igrelay worker --burst`` processes take the
fetch jobs (and the sink deliveries they make) until the queue is empty. The time of an empty run (the
processes starting and finding nothing) is measured too and taken off, so the rate is the work's.

    python bench/bench_workers.py [--media 2400] [--processes 1,2,4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from redis import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import redis_server, start  # noqa: E402
from config.settings import Settings  # noqa: E402
from igrelay.sandbox import Sandbox, demo_data  # noqa: E402
from workers import context, fetch, schedule  # noqa: E402

LATENCY = 0.1


def environment(sb: Sandbox, url: str, tmp: str) -> dict[str, str]:
    tokens = ",".join(f"{a}={sb.token_for(a)}" for a in sb.accounts)
    env = {"REDIS_URL": url, "GRAPH_API_URL": sb.url, "IG_ACCESS_TOKENS": tokens, "LOG_LEVEL": "WARNING"}
    return env | {"IGRELAY_SINKS": f"file://{tmp}/records.jsonl", "LOG_FORMAT": "text", "IGRELAY_POLL_INTERVAL": "0"}


def run(env: dict[str, str], processes: int) -> float:
    """Seconds until ``processes`` burst workers have emptied the queue."""
    t0 = time.perf_counter()
    procs = [
        start([sys.executable, "-m", "igrelay", "worker", "--burst"], {**os.environ, **env}, f"worker-{processes}-{n}")
        for n in range(processes)
    ]
    for proc in procs:
        if proc.wait(timeout=600) != 0:
            raise RuntimeError(f"worker exited with {proc.returncode}")
    return time.perf_counter() - t0


def refreshes(sb: Sandbox, settings: Settings, redis: Redis, env: dict[str, str], ids: list[str], n: int) -> float:
    """Refreshes/s of ``n`` worker processes over ``ids``, their start-up taken off."""
    redis.flushdb()
    idle = run(env, n)
    account = sb.accounts[0]
    for media_id in ids:
        schedule.request_fetch(redis, account, media_id, "schedule", time.time())
    while fetch.dispatch(context.Context(settings, redis)):  # a claim takes up to 1,000 at a time
        pass
    sb.reset_calls()
    took = run(env, n)
    if sb.total_calls < len(ids):
        raise RuntimeError(f"only {sb.total_calls} of {len(ids)} media were fetched")
    return len(ids) / max(took - idle, 1e-3)


def ceiling(sb: Sandbox, ids: list[str], threads: int = 128) -> float:
    """Calls/s the sandbox answers to a bare threaded client in this process: the box's limit, without igrelay."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    url, token = sb.url, sb.token_for(sb.accounts[0])
    sessions = [requests.Session() for _ in range(threads)]

    def one(n: int) -> int:
        reply = sessions[n % threads].get(
            f"{url}/{ids[n]}/insights", params={"metric": "reach"}, headers={"Authorization": f"Bearer {token}"}
        )
        return reply.status_code

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(len(ids))))
    return len(ids) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=int, default=2400)
    parser.add_argument("--processes", default="1,2,4")
    args = parser.parse_args()
    counts = [int(p) for p in args.processes.split(",")]
    with redis_server() as url, tempfile.TemporaryDirectory() as tmp, Sandbox(demo_data(1, history=0)) as sb:
        account = sb.accounts[0]
        ids = [sb.add_media(account, "FEED", "IMAGE", timestamp=time.time() - 86400) for _ in range(args.media)]
        sb.latency = LATENCY
        env = environment(sb, url, tmp)
        settings = Settings.from_env(env, dotenv=False)
        redis = Redis.from_url(url)
        rates = {n: refreshes(sb, settings, redis, env, ids, n) for n in counts}
        bare = ceiling(sb, ids)
    print(f"\nbench_workers: {args.media:,} media refreshed per run, Graph latency {LATENCY * 1000:.0f} ms,")
    print(f"{os.cpu_count()} CPUs shared by the workers, the sandbox Graph API and Redis\n")
    print("| worker processes | refreshes/s | per process | efficiency per process |")
    print("|---|---|---|---|")
    for n, rate in rates.items():
        print(f"| {n} | {rate:.0f} | {rate / n:.0f} | {rate / (n * rates[counts[0]]) * 100:.0f}% |")
    print(f"| bare client, 128 threads, no igrelay (the box's ceiling) | {bare:.0f} calls/s | | |")


if __name__ == "__main__":
    main()
