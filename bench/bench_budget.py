"""Meta's budget and a sizing model: Graph calls per account and hour, measured against the sandbox.

Each periodic task is run once for one account against the sandbox Graph API (no latency) and its
calls are read from igrelay's own per-account counter (``config.budget``), which the sandbox's call
count checks. The sizing model multiplies them by how often each task runs with the default settings,
and takes the refresh rate per worker process and the Redis bytes per media and per account measured
by ``bench_workers`` and ``bench_memory`` (given as options, their figures from the last run by default).

    python bench/bench_budget.py [--rate-per-process 120] [--bytes-per-media 526] [--bytes-per-account 5337]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

from redis import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import redis_server  # noqa: E402
from config import budget, contract  # noqa: E402
from config.settings import Settings  # noqa: E402
from igrelay.sandbox import Sandbox, demo_data  # noqa: E402
from workers import account_insights, context, fetch, polling, schedule, watchdog  # noqa: E402

META_PER_IMPRESSION = 4800  # calls per 24 h per impression: https://developers.facebook.com/docs/graph-api/overview/rate-limiting#buc-rate-limits


def measure(sb: Sandbox, settings: Settings, redis: Redis) -> dict[str, float]:
    """Graph calls of one run of each task for one account, by purpose."""
    account = sb.accounts[0]
    polling.poll_account(redis, settings, account)  # first poll finds the recent media
    redis.delete(contract.account_calls(account, budget.current_hour()))
    sb.reset_calls()
    polling.poll_account(redis, settings, account)  # a steady-state poll: nothing new
    media_id = sb.add_media(account, "FEED", "IMAGE")
    schedule.request_fetch(redis, account, media_id, "schedule", time.time())
    items = fetch.claim(redis, time.time())
    fetch.fetch_batch(redis, settings, items)
    account_insights.fetch_day(redis, settings, account)
    watchdog.watch(redis, settings, account)
    counted = budget.hour(redis, account)
    if sum(counted.values()) != sb.total_calls:
        raise RuntimeError(f"counted {counted}, the sandbox saw {sb.total_calls}")
    return {"poll": counted["poll"], "media": counted["media"] / len(items), "insights": counted["insights"]} | {
        "watchdog": counted["watchdog"]
    }


def per_hour(costs: dict[str, float], settings: Settings, posts_per_day: float) -> dict[str, float]:
    """Calls per account and hour with the default settings, by task."""
    refreshes = posts_per_day * len(settings.refresh_schedule) / 24  # each post is refreshed at each offset
    return {
        "poll": costs["poll"] * 3600 / settings.poll_interval,
        "media refreshes": costs["media"] * refreshes,
        "account insights": costs["insights"] * 2 / 24,  # each day is fetched twice
        "watchdog": costs["watchdog"] * 3600 / settings.watchdog_interval,
        "token refresh": 1 / 24,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate-per-process", type=float, default=120.0, help="refreshes/s of one worker process")
    parser.add_argument("--bytes-per-media", type=float, default=526.0)
    parser.add_argument("--bytes-per-account", type=float, default=5337.0)
    args = parser.parse_args()
    with redis_server() as url, tempfile.TemporaryDirectory() as tmp, Sandbox(demo_data(1, history=0)) as sb:
        env = {"REDIS_URL": url, "GRAPH_API_URL": sb.url, "IGRELAY_SINKS": f"file://{tmp}/r.jsonl"}
        env |= {"IG_ACCESS_TOKENS": f"{sb.accounts[0]}={sb.token_for(sb.accounts[0])}", "LOG_LEVEL": "WARNING"}
        settings = Settings.from_env(env, dotenv=False)
        redis = Redis.from_url(url)
        context.install(context.Context(settings, redis))
        costs = measure(sb, settings, redis)
    print("\nbench_budget: Graph calls per run of each task (counted per account by igrelay, checked by the sandbox)\n")
    print("| task | calls per run | runs |")
    print("|---|---|---|")
    print(f"| poll (/media + /stories, nothing new) | {costs['poll']:.0f} | every {settings.poll_interval // 60} min |")
    times = len(settings.refresh_schedule)
    print(f"| media refresh (node and insights in one call) | {costs['media']:.0f} | {times} per post |")
    print(f"| account insights of a day | {costs['insights']:.0f} | twice per day |")
    print(f"| watchdog | {costs['watchdog']:.0f} | every {settings.watchdog_interval // 60} min |")
    print("| token refresh (Instagram Login) | 1 | once per day |")
    sizing(costs, settings, args)


def sizing(costs: dict[str, float], settings: Settings, args: argparse.Namespace) -> None:
    """The model: N accounts with M posts a day need W processes, R MB of Redis, C calls per account per hour."""
    tracked_days = (max(settings.refresh_schedule) + 86400) / 86400  # a media's state outlives its schedule by a day
    print("\n| accounts | posts/day each | calls/account/h | impressions/day needed (Meta) | Graph calls/s |", end=" ")
    print("worker processes | Redis MB |")
    print("|---|---|---|---|---|---|---|")
    for accounts, posts in ((100, 5), (1000, 5), (10_000, 2), (10_000, 10)):
        hourly = sum(per_hour(costs, settings, posts).values())
        rate = accounts * hourly / 3600
        workers = max(1, math.ceil(rate * 2 / args.rate_per_process))  # half of each process kept for bursts
        media = accounts * posts * tracked_days
        mb = (media * args.bytes_per_media + accounts * args.bytes_per_account) / 2**20
        need = math.ceil(hourly * 24 / META_PER_IMPRESSION)
        print(f"| {accounts:,} | {posts} | {hourly:.1f} | {need} | {rate:.1f} | {workers} | {mb:.0f} |")


if __name__ == "__main__":
    main()
