"""Accounts at scale: what a tick costs and how polls spread, at 100, 1,000 and 10,000 accounts.

Environment accounts only (no Graph calls: nothing here is due at Meta), in a private redis-server on a
free loopback port. A tick's Redis round trips are counted by a counting connection. The baseline is
the walk over every account that ticks made before due sets (a lock per account and task, and the
active-account pipeline), replayed in the same Redis.

    python bench/bench_accounts.py [--accounts 100,1000,10000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from redis import Redis
from redis.connection import Connection, ConnectionPool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import redis_server  # noqa: E402
from config import accounts, contract, periodic  # noqa: E402
from config.settings import Settings  # noqa: E402
from workers import context, polling, ticker  # noqa: E402

FIRST_ID = 17841400000000000
OLD_TASKS = ("poll", "token_refresh", "watchdog", "account_insights:first", "account_insights:again")


class Counting(Connection):
    """A connection that counts its round trips (one per command sent, one per pipeline)."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        Counting.sent += 1
        super().send_packed_command(command, check_health)


def settings_for(url: str, n: int, tmp: str) -> Settings:
    """``n`` environment accounts under Instagram Login (so every periodic task runs)."""
    tokens = ",".join(f"{FIRST_ID + i}=tok{i}" for i in range(n))
    env = {"REDIS_URL": url, "IG_ACCESS_TOKENS": tokens, "IGRELAY_LOGIN_TYPE": "instagram"}
    env |= {"GRAPH_API_URL": "http://127.0.0.1:9", "IGRELAY_SINKS": f"file://{tmp}/r.jsonl", "LOG_LEVEL": "WARNING"}
    return Settings.from_env(env, dotenv=False)


def nothing_due(redis: Redis, settings: Settings, ahead: float = 60) -> None:
    """Move whatever falls due within ``ahead`` seconds one interval later: a tick then has nothing to do."""
    horizon = time.time() + ahead
    for task in periodic.TASKS:
        key, step = contract.due(task), periodic.interval(settings, task)
        soon = redis.zrangebyscore(key, "-inf", horizon, withscores=True)
        if soon:
            redis.zadd(key, {m: s + step * (1 + (horizon - s) // step) for m, s in soon})


def tick_cost(redis: Redis, settings: Settings) -> tuple[int, float]:
    """(round trips, ms) of the median of five ticks with nothing due."""
    ctx = context.Context(settings, redis)
    samples = []
    for _ in range(5):
        nothing_due(redis, settings)
        Counting.sent = 0
        t0 = time.perf_counter()
        ticker.run(ctx)
        samples.append((Counting.sent, (time.perf_counter() - t0) * 1000))
    return max(s[0] for s in samples), statistics.median(s[1] for s in samples)


def walk_cost(redis: Redis, settings: Settings) -> tuple[int, float]:
    """(round trips, ms) of the walk ticks made before due sets, every lock held (nothing due)."""
    ids = accounts.ids(redis, settings)
    with redis.pipeline(transaction=False) as pipe:
        for task in OLD_TASKS:
            for account in ids:
                pipe.set(contract.lock(task, account), b"1", ex=3600)
        pipe.execute()
    Counting.sent = 0
    t0 = time.perf_counter()
    for _ in range(3):  # polling, token refresh, account insights: the active accounts
        accounts.active(redis, settings)
    for task in OLD_TASKS:
        for account in ids:
            redis.set(contract.lock(task, account), b"1", nx=True, ex=3600)
    return Counting.sent, (time.perf_counter() - t0) * 1000


def spread(redis: Redis, settings: Settings, intervals: int = 2) -> tuple[float, int]:
    """(mean, max) polls enqueued per tick over ``intervals`` poll intervals, from the accounts' first entry."""
    ctx = context.Context(settings, redis)
    counts: list[int] = []
    real = ticker.enqueue_each

    def count(ctx: Any, task: str, found: Iterable[str], *args: Any, **kwargs: Any) -> int:
        return len(list(found))  # the poll jobs themselves are not the point here

    ticker.enqueue_each = count  # type: ignore[assignment]
    try:
        t0 = time.time()
        polling.poll_due(ctx, t0)
        ticks = intervals * settings.poll_interval // ticker.TICK_SECONDS
        counts = [polling.poll_due(ctx, t0 + ticker.TICK_SECONDS * (k + 1)) for k in range(ticks)]
    finally:
        ticker.enqueue_each = real  # type: ignore[assignment]
    return statistics.mean(counts), max(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", default="100,1000,10000")
    args = parser.parse_args()
    sizes = [int(n) for n in args.accounts.split(",")]
    ticks, polls = [], []
    started = time.perf_counter()
    with redis_server() as url, tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            redis = Redis(connection_pool=ConnectionPool.from_url(url, connection_class=Counting))
            redis.flushdb()
            settings = settings_for(url, n, tmp)
            t0 = time.perf_counter()
            Counting.sent = 0
            ticker.run(context.Context(settings, redis))  # the accounts enter the sets
            first = (Counting.sent, (time.perf_counter() - t0) * 1000)
            trips, ms = tick_cost(redis, settings)
            old_trips, old_ms = walk_cost(redis, settings)
            ticks.append((n, trips, ms, old_trips, old_ms, first))
            redis.flushdb()
            mean, most = spread(redis, settings)
            polls.append((n, settings.poll_interval, mean, most))
    print_tables(ticks, polls, time.perf_counter() - started)


def print_tables(ticks: list[tuple[Any, ...]], polls: list[tuple[Any, ...]], seconds: float) -> None:
    print(f"\nbench_accounts: whole run {seconds:.0f} s; tick every {ticker.TICK_SECONDS} s\n")
    print("| accounts | tick, nothing due: round trips | ms | walk before due sets: round trips | ms |", end=" ")
    print("first tick (accounts enter): round trips | ms | target | ok |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, trips, ms, old_trips, old_ms, (f_trips, f_ms) in ticks:
        ok = trips <= 20 and ms <= 50
        print(f"| {n:,} | {trips} | {ms:.1f} | {old_trips:,} | {old_ms:.0f} | {f_trips} | {f_ms:.0f} |", end=" ")
        print(f"<= 20 round trips, <= 50 ms | {'yes' if ok else 'NO'} |")
    print("\n| accounts | poll interval s | polls per tick, mean | most in one tick | target (1.5 x mean) | ok |")
    print("|---|---|---|---|---|---|")
    for n, interval, mean, most in polls:
        target = 1.5 * n * ticker.TICK_SECONDS / interval
        print(f"| {n:,} | {interval} | {mean:.2f} | {most} | <= {target:.2f} | {'yes' if most <= target else 'NO'} |")


if __name__ == "__main__":
    main()
