"""Insights benchmark: Graph calls per refresh, coalescing of a comment burst, and refreshes/s of one
worker process against the sandbox Graph API at 100 ms latency. Loopback only, bounded in time.

    python bench/bench_fetch.py [--media 100] [--throughput-media 600]

Prints one table; every figure has its baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import requests
from redis import Redis

from config import contract

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.settings import Settings  # noqa: E402
from igrelay import payloads  # noqa: E402
from igrelay.sandbox import Sandbox, demo_data  # noqa: E402
from workers import context, fetch, ingest, polling, schedule  # noqa: E402
from workers.graph_client import GraphClient, new_session  # noqa: E402
from workers.runner import build_worker  # noqa: E402

REDIS_URL = os.environ.get("IGRELAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


def settings_for(sb: Sandbox, tmp: str) -> Settings:
    """Settings pointed at the sandbox and this run's Redis database."""
    tokens = ",".join(f"{a}={sb.token_for(a)}" for a in sb.accounts)
    env = {
        "REDIS_URL": REDIS_URL,
        "GRAPH_API_URL": sb.url,
        "IG_ACCESS_TOKENS": tokens,
        "IGRELAY_SINKS": f"file://{tmp}/records.jsonl",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "text",
    }
    return Settings.from_env(env, dotenv=False)


def world(media: int) -> Sandbox:
    """One account with ``media`` feed posts and reels, one to five days old."""
    data = demo_data(accounts=1, history=0)  # only the recent media this bench adds: all found by polling
    sb = Sandbox(data=data).start()
    account = sb.accounts[0]
    for n in range(media):
        sb.add_media(
            account,
            "REELS" if n % 3 == 0 else "FEED",
            "VIDEO" if n % 3 == 0 else "IMAGE",
            timestamp=time.time() - 86400 * (1 + n % 5),
        )
    return sb


def work(settings: Settings, redis: Redis, now: float | None = None) -> float:
    """Dispatch what is due, then one real RQ worker process in burst mode; returns seconds taken."""
    t0 = time.perf_counter()
    fetch.dispatch(context.Context(settings, redis), now)
    build_worker(settings).work(burst=True, with_scheduler=False, logging_level="WARNING")
    return time.perf_counter() - t0


def calls_per_refresh(sb: Sandbox, settings: Settings, redis: Redis) -> tuple[float, float, int]:
    """(igrelay's calls per steady-state refresh, a naive fetcher's, media refreshed)."""
    account = sb.accounts[0]
    polling.poll_account(redis, settings, account)
    work(settings, redis)  # first fetch of every media found
    ids = [m.decode().split(":", 1)[1] for m in redis.zrange(contract.FETCH_DUE, 0, -1)]
    for media_id in ids:
        schedule.request_fetch(redis, account, media_id, "schedule", time.time())
    sb.reset_calls()
    work(settings, redis)
    ours = sb.total_calls / len(ids)
    sb.reset_calls()
    with requests.Session() as http:  # the usual fetcher: the media node, then /insights
        http.headers["Authorization"] = f"Bearer {sb.token_for(account)}"
        for media_id in ids:
            node = http.get(f"{settings.graph_base}/{media_id}", params={"fields": "media_product_type"}, timeout=5)
            metric = "reach,views" if node.json().get("media_product_type") != "STORY" else "reach"
            http.get(f"{settings.graph_base}/{media_id}/insights", params={"metric": metric}, timeout=5)
    return ours, sb.total_calls / len(ids), len(ids)


def burst(sb: Sandbox, settings: Settings, redis: Redis, media: int, per_media: int) -> tuple[int, int]:
    """(insights calls, comment changes ingested) for a burst inside the debounce window (media already polled)."""
    account = sb.accounts[0]
    ids = [m.id for m in sb.data.media.values() if m.media_product_type != "STORY" and not m.parent_id][:media]
    ingest.ensure_group(redis)
    for media_id in ids:
        body = payloads.encode(payloads.delivery("comments", account, media_id, count=per_media))
        redis.xadd(contract.INBOX, {"b": body, "t": "0"})
    changes = sum(ingest.drain(redis, settings, consumer="bench").changes.values())
    sb.reset_calls()
    work(settings, redis, now=time.time() + settings.debounce_seconds + 1)
    return sb.calls["media_node"] + sb.calls["media_insights"], changes


def throughput(settings: Settings, sb: Sandbox, redis: Redis, media: int) -> tuple[float, float]:
    """(refreshes/s of one worker process, refreshes/s of a one-call-at-a-time loop) at sb.latency."""
    account = sb.accounts[0]
    ids = [m.id for m in sb.data.media.values() if m.media_product_type in ("FEED", "REELS") and not m.parent_id]
    ids = (ids * (media // len(ids) + 1))[:media]
    kinds = {m.id: m.media_product_type for m in sb.data.media.values()}
    for media_id in set(ids):
        schedule.request_fetch(redis, account, media_id, "schedule", time.time())
    unique = len(set(ids))
    seconds = work(settings, redis)
    ours = unique / seconds
    with new_session(1) as session:
        client = GraphClient(session, settings, redis)
        t0 = time.perf_counter()
        loop = ids[:30]
        for media_id in loop:
            client.media(account, media_id, kinds[media_id])
        baseline = len(loop) / (time.perf_counter() - t0)
    return ours, baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=int, default=100)
    parser.add_argument("--comments-per-media", type=int, default=100)
    parser.add_argument("--throughput-media", type=int, default=600)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    redis = Redis.from_url(REDIS_URL)
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        redis.flushdb()
        sb = world(args.media)
        settings = settings_for(sb, tmp)
        context.install(context.Context(settings, redis))
        ours, naive, refreshed = calls_per_refresh(sb, settings, redis)
        rows.append(
            (
                "Graph calls per media refresh (steady state)",
                f"{ours:.2f}",
                f"{naive:.2f} (node + /insights)",
                "<= 1.0",
                ours <= 1.0,
            )
        )
        calls, changes = burst(sb, settings, redis, args.media, args.comments_per_media)
        rows.append(
            (
                f"insights calls for {changes} comment changes on {args.media} media",
                str(calls),
                f"{changes} (one fetch per change)",
                f"<= {args.media}",
                calls <= args.media,
            )
        )
        redis.flushdb()
        sb.stop()
        sb = world(args.throughput_media)
        sb.latency = 0.1
        settings = settings_for(sb, tmp)
        context.install(context.Context(settings, redis))
        rate, loop = throughput(settings, sb, redis, args.throughput_media)
        rows.append(
            (
                "media refreshes/s, one worker process, 100 ms Graph latency",
                f"{rate:.0f}",
                f"{loop:.1f} (one call at a time)",
                ">= 50",
                rate >= 50,
            )
        )
        sb.stop()
        redis.flushdb()
    print_table(rows, refreshed, time.perf_counter() - started)


def print_table(rows: list[tuple], refreshed: int, seconds: float) -> None:
    """The results as a Markdown table."""
    print(f"\nbench_fetch: {refreshed} media refreshed in steady state; whole run {seconds:.0f} s\n")
    print("| measure | igrelay | baseline (same run) | target | ok |")
    print("|---|---|---|---|---|")
    for name, ours, base, target, ok in rows:
        print(f"| {name} | {ours} | {base} | {target} | {'yes' if ok else 'NO'} |")


if __name__ == "__main__":
    main()
