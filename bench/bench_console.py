"""Console benchmark: every console page over 100,000 records in the SQLite sink (p95 of 20 loads,
budget 200 ms each), and ``/webhook``'s ingest rate with the console on vs off in the same run.

    python bench/bench_console.py [--records 100000] [--loads 20] [--seconds 4] [--rounds 3]

Prints two tables; exits 1 when a page misses its budget.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redis import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_ingest import REDIS_URL, SECRET, load, start_web, wrk  # noqa: E402
from bench.procs import stop  # noqa: E402
from config.settings import Settings  # noqa: E402
from igrelay import payloads  # noqa: E402
from igrelay.procs import free_port  # noqa: E402

BUDGET_MS = 200.0
ACCOUNTS = ("17841400000000001", "17841400000000002")
CONSOLE = {"IGRELAY_CONSOLE_PASSWORD": "bench-console", "IGRELAY_SECRET_KEY": "bench-secret-key-0123456789abcdef"}


def fill(settings: Settings, total: int) -> tuple[str, str]:
    """``total`` records: media insights of 1,000 media (about 90 fetches each), daily account insights,
    webhook events; returns (an account, a media) to load pages for."""
    from workers import records as R
    from workers import sinks

    name, (url, options) = next(iter(sinks.configured(settings).items()))
    sink = sinks.load(url, options, settings)
    batch: list[dict[str, Any]] = []
    made, i = 0, 0
    while made < total:
        account, media = ACCOUNTS[i % 2], str(18000000000000000 + i % 1000)
        node = {"id": media, "media_type": "VIDEO", "media_product_type": "REELS", "timestamp": "2026-01-01T00:00:00Z"}
        at = f"2026-{1 + (i // 1000) // 28 % 12:02d}-{1 + (i // 1000) % 28:02d}T{i % 24:02d}:00:{i % 60:02d}Z"
        if i % 50 == 0:
            batch.append(R.account_insights(account, at[:10], {"reach": i, "views": 2 * i}, {}, "daily", at))
        elif i % 10 == 0:
            event = {"kind": "webhook_event", "id": f"e{i:031d}", "account_id": account, "media_id": media}
            batch.append({**event, "captured_at": at, "trigger": "comments", "event": {"text": f"comment {i}"}})
        else:
            batch.append(R.media_insights(account, node, {"views": i, "reach": i // 2}, {}, "schedule", at))
        made, i = made + 1, i + 1
        if len(batch) == 5000:
            sink.send(batch)
            batch = []
    sink.send(batch)
    sink.close()
    return ACCOUNTS[0], "18000000000000001"


def page_times(settings: Settings, account: str, media: str, loads: int) -> list[tuple[str, float, float]]:
    """(page, p50 ms, p95 ms) over ``loads`` renders of each page, logged in through the test client."""
    from webhook import create_app

    redis = Redis.from_url(settings.redis_url)
    client = create_app(settings, redis=redis).test_client()
    form = client.get("/console/login").get_data(as_text=True)
    csrf = form.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/console/login", data={"password": CONSOLE["IGRELAY_CONSOLE_PASSWORD"], "csrf_token": csrf})
    pages = ["/console", "/console/overview.frag", "/console/accounts", f"/console/accounts/{account}"]
    pages += [f"/console/media/{media}", "/console/activity", f"/console/activity?account={account}&kind=webhook_event"]
    pages += ["/console/activity.frag?field=comments", "/console/sinks", "/console/failures"]
    out = []
    for path in pages:
        client.get(path)  # warm: templates compiled, SQLite pages cached
        took = []
        for _ in range(loads):
            t0 = time.perf_counter()
            answer = client.get(path)
            took.append((time.perf_counter() - t0) * 1000)
            assert answer.status_code == 200, (path, answer.status_code)
        took.sort()
        out.append((path, statistics.median(took), took[min(len(took) - 1, int(len(took) * 0.95))]))
    redis.close()
    return out


def ingest_ratio(seconds: float, rounds: int) -> tuple[float, float, list[float]]:
    """Median req/s of signed 1 KB deliveries with the console off and on (alternating), and each round's ratio."""
    body = payloads.encode(payloads.delivery("comments", ACCOUNTS[0], "18111", 3))
    body = body + b" " * max(0, 1024 - len(body))
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": payloads.sign(body, SECRET)}
    run = wrk if shutil.which("wrk") else load
    rates: dict[str, list[float]] = {"off": [], "on": []}
    for _round in range(rounds):
        for mode in ("off", "on"):
            for key, value in CONSOLE.items():
                if mode == "on":
                    os.environ[key] = value
                else:
                    os.environ.pop(key, None)
            Redis.from_url(REDIS_URL).flushdb()
            port = free_port()
            proc = start_web("webhook:create_app()", port)
            try:
                run(f"http://127.0.0.1:{port}/webhook", body, headers, 1.0, 16)
                rates[mode].append(run(f"http://127.0.0.1:{port}/webhook", body, headers, seconds, 16)["rps"])
            finally:
                stop(proc)
    for key in CONSOLE:
        os.environ.pop(key, None)
    ratios = sorted(on / off for on, off in zip(rates["on"], rates["off"], strict=True))
    return statistics.median(rates["off"]), statistics.median(rates["on"]), ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="igrelay-bench-console-") as tmp:
        env = {"META_APP_SECRET": SECRET, "META_VERIFY_TOKEN": "bench", "REDIS_URL": REDIS_URL, "LOG_LEVEL": "WARNING"}
        env |= {"IGRELAY_SINKS": f"sqlite:///{tmp}/records.sqlite3", "LOG_FORMAT": "text", **CONSOLE}
        env["IG_ACCESS_TOKENS"] = ",".join(f"{a}=bench-token-{a}" for a in ACCOUNTS)
        settings = Settings.from_env(env, dotenv=False)
        Redis.from_url(REDIS_URL).flushdb()
        started = time.monotonic()
        account, media = fill(settings, args.records)
        print(f"{args.records:,} records in the SQLite sink (written in {time.monotonic() - started:.0f} s)")
        times = page_times(settings, account, media, args.loads)
    print(f"\nconsole page | p50 ms | p95 ms ({args.loads} loads) | budget {BUDGET_MS:.0f} ms")
    for path, p50, p95 in times:
        print(f"{path} | {p50:.1f} | {p95:.1f} | {'ok' if p95 < BUDGET_MS else 'OVER'}")
    off, on, ratios = ingest_ratio(args.seconds, args.rounds)
    print("\n/webhook (signed 1 KB deliveries) | console off | console on | on/off")
    print(
        f"req/s, median of {args.rounds} | {off:.0f} | {on:.0f} | {statistics.median(ratios):.0%} "
        f"(rounds {ratios[0]:.0%}-{ratios[-1]:.0%})"
    )
    return 0 if all(p95 < BUDGET_MS for _p, _m, p95 in times) else 1


if __name__ == "__main__":
    sys.exit(main())
