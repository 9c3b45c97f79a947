"""Redis memory: bytes per tracked media over a synthetic 1,000,000 media, and per account over 10,000 accounts.

The state is written by igrelay's own functions (a media as after its first fetch: its state hash, its
place in the account's known media and in the fetch schedule; an account as connected, watched,
counted and with five days of account insights), pipelined into a private redis-server on a free
loopback port. Per key kind, ``MEMORY USAGE`` of a sample (a sorted set's share is its size over its
members); the total is ``used_memory`` after the load over the count, which includes Redis's own tables.

    python bench/bench_memory.py [--media 1000000] [--accounts 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from redis import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import redis_server  # noqa: E402
from config import accounts, budget, contract, periodic  # noqa: E402
from config.settings import Settings  # noqa: E402
from workers import media_state, schedule, watchdog  # noqa: E402

FIRST_ACCOUNT = 17841400000000000
FIRST_MEDIA = 18000000000000000
BATCH = 5000


def settings_for(url: str, tmp: str) -> Settings:
    env = {"REDIS_URL": url, "GRAPH_API_URL": "http://127.0.0.1:9", "IGRELAY_LOGIN_TYPE": "instagram"}
    env |= {"IGRELAY_SECRET_KEY": "bench-key-" + "x" * 32, "IGRELAY_SINKS": f"file://{tmp}/r.jsonl"}
    return Settings.from_env(env | {"LOG_LEVEL": "WARNING"}, dotenv=False)


def media_state_of(n: int, now: float) -> dict[str, str]:
    """A media's state hash as a first fetch leaves it."""
    posted = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(now - n % 86400))
    state = {"kind": "REELS" if n % 3 == 0 else "FEED", "media_type": "VIDEO" if n % 3 == 0 else "IMAGE"}
    state |= {"timestamp": posted, "permalink": f"https://www.instagram.com/p/C{n:010d}/"}
    return state | {"measured": "1", "digest": f"{n:016x}"}


def load_media(redis: Redis, settings: Settings, media: int, per_account: int) -> float:
    """Write ``media`` media, ``per_account`` to an account; returns seconds taken."""
    now, t0 = time.time(), time.perf_counter()
    for start in range(0, media, BATCH):
        with redis.pipeline(transaction=False) as pipe:
            for n in range(start, min(start + BATCH, media)):
                account, media_id = str(FIRST_ACCOUNT + n // per_account), str(FIRST_MEDIA + n)
                media_state.save(pipe, settings, account, media_id, media_state_of(n, now), now)
                pipe.zadd(contract.known_media(account), {media_id: now - n % 86400})
                schedule.request_fetch(pipe, account, media_id, "schedule", now + 3600 + n % 86400)
            pipe.execute()
    return time.perf_counter() - t0


def load_accounts(redis: Redis, settings: Settings, n: int) -> float:
    """Connect ``n`` accounts, enter them into the due sets, and give each what a day of work leaves."""
    t0, now = time.perf_counter(), time.time()
    ids = [str(FIRST_ACCOUNT + 500_000 + i) for i in range(n)]
    for i, account in enumerate(ids):
        accounts.connect(redis, settings, accounts.Login(account, f"user{i}", f"token-{i:032d}", 60 * 86400))
    with redis.pipeline(transaction=False) as pipe:
        for account in ids:
            watchdog.record(pipe, account, {}, {}, now, now)
            pipe.set(contract.last_delivery(account), int(now), ex=30 * 86400)
            for ago in (0, 3600):
                for purpose, calls in (("poll", 12), ("media", 40), ("insights", 1), ("watchdog", 1)):
                    for _ in range(calls):
                        budget.count(pipe, account, purpose, now - ago)
            for day in range(5):
                key = contract.account_day(account, f"2026-01-0{day + 1}")
                pipe.hset(key, mapping={"id": f"{day:040x}", "followers_count": 12345})
                pipe.expire(key, 5 * 86400)
        pipe.execute()
    return time.perf_counter() - t0


def kind_of(key: str) -> str:
    """A key's kind: its name with ids replaced."""
    parts = key.split(":")
    return ":".join("ID" if p.isdigit() or (p[:1].isdigit() and "-" in p) else p for p in parts)


def usage(redis: Redis, pattern: str, members_per_key: dict[str, int], sample: int = 200) -> dict[str, float]:
    """Mean ``MEMORY USAGE`` per key kind matching ``pattern`` (a sample of keys)."""
    sizes: dict[str, list[int]] = defaultdict(list)
    for n, key in enumerate(redis.scan_iter(match=pattern, count=1000)):
        name = key.decode()
        kind = kind_of(name)
        if len(sizes[kind]) < sample:
            sizes[kind].append(int(redis.memory_usage(name, samples=0) or 0))
        if n > 200_000:
            break
    return {k: sum(v) / len(v) for k, v in sizes.items()}


def used(redis: Redis) -> int:
    return int(redis.info("memory")["used_memory"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    args = parser.parse_args()
    per_account = max(1, args.media // args.accounts)
    with redis_server() as url, tempfile.TemporaryDirectory() as tmp:
        redis, settings = Redis.from_url(url), settings_for(url, tmp)
        base = used(redis)
        media_seconds = load_media(redis, settings, args.media, per_account)
        after_media = used(redis)
        rows = media_rows(redis, args.media, per_account)
        account_seconds = load_accounts(redis, settings, args.accounts)
        per_account_bytes = (used(redis) - after_media) / args.accounts
        account_rows = usage(redis, f"{contract.PREFIX}account:{FIRST_ACCOUNT + 500_000}*", {})
        account_rows |= usage(redis, f"{contract.PREFIX}token:*", {}, 50)
        account_rows |= usage(redis, f"{contract.PREFIX}watchdog:*", {}, 50)
        shares = {f"{contract.due(t)} (share)": zset_share(redis, contract.due(t)) for t in periodic.EVERY_ACCOUNT}
        per_media = (after_media - base) / args.media
    print_tables(args, per_media, rows, media_seconds, per_account_bytes, account_rows | shares, account_seconds)


def media_rows(redis: Redis, media: int, per_account: int) -> dict[str, float]:
    """MEMORY USAGE per media of each key kind a media creates (hash; its share of the sorted sets)."""
    rows = usage(redis, contract.media(str(FIRST_ACCOUNT), "*"), {}, 200)
    rows[f"{contract.FETCH_DUE} (share)"] = zset_share(redis, contract.FETCH_DUE)
    rows[f"{contract.known_media('ID')} (share)"] = zset_share(redis, contract.known_media(str(FIRST_ACCOUNT)))
    rows[f"{contract.FETCH_TRIGGER} (share)"] = float(redis.memory_usage(contract.FETCH_TRIGGER) or 0) / media
    return rows


def zset_share(redis: Redis, key: str) -> float:
    """A sorted set's bytes per member."""
    members = redis.zcard(key)
    return float(redis.memory_usage(key, samples=0) or 0) / members if members else 0.0


def print_tables(args, per_media, rows, media_s, per_account, account_rows, account_s) -> None:  # type: ignore[no-untyped-def]
    print(f"\nbench_memory: {args.media:,} media over {args.media // max(1, args.media // args.accounts):,} accounts")
    print(f"loaded in {media_s:.0f} s; {args.accounts:,} accounts in {account_s:.0f} s\n")
    print("| per media | bytes |")
    print("|---|---|")
    for kind, size in rows.items():
        print(f"| {kind} | {size:.0f} |")
    ok = per_media <= 600
    print(f"| **used_memory per media, all included** | **{per_media:.0f}** (target <= 600: {'yes' if ok else 'NO'}) |")
    print(f"| 1,000,000 media | {per_media * 1_000_000 / 2**20:.0f} MiB |")
    print("\n| per account | bytes |")
    print("|---|---|")
    for kind, size in sorted(account_rows.items()):
        print(f"| {kind} | {size:.0f} |")
    print(f"| **used_memory per account, all included** | **{per_account:.0f}** |")


if __name__ == "__main__":
    main()
