"""Receiver behind Redis Sentinel: what ``WAIT 1`` (a delivery on a replica before its 200) costs.

    python bench/bench_sentinel.py [--seconds 5] [--connections 16] [--rounds 3]

Starts a private primary, one replica and one sentinel on loopback, then loads three webs in turn:
bare Flask, igrelay on ``redis://`` to the primary, igrelay on ``redis+sentinel://`` (primary found
through the sentinel, every delivery waiting for the replica). Prints one table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redis import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import bench_ingest  # noqa: E402
from bench.procs import start, stop  # noqa: E402
from igrelay import payloads  # noqa: E402
from igrelay.procs import free_port  # noqa: E402


def redis_node(tmp: Path, port: int, primary: int | None = None) -> subprocess.Popen[bytes]:
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp)]
    argv += ["--replicaof", "127.0.0.1", str(primary)] if primary else []
    return start(argv, {}, f"redis-{port}")


def sentinel_node(tmp: Path, port: int, primary: int) -> subprocess.Popen[bytes]:
    conf = tmp / f"sentinel-{port}.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp}\nsentinel monitor bench 127.0.0.1 {primary} 1\n")
    return start(["redis-server", str(conf), "--sentinel"], {}, f"sentinel-{port}")


def wait(predicate: object, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except Exception:  # noqa: BLE001, S110 - not up yet
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="igrelay-bench-sentinel-"))
    primary, replica, sentinel = free_port(), free_port(), free_port()
    servers = [redis_node(tmp, primary), redis_node(tmp, replica, primary), sentinel_node(tmp, sentinel, primary)]
    try:
        client = Redis(port=primary)
        wait(lambda: client.info("replication")["connected_slaves"] == 1, "the replica")
        wait(lambda: Redis(port=sentinel).sentinel_get_master_addr_by_name("bench"), "the sentinel")
        rows = measure(primary, sentinel, args)
    finally:
        for proc in servers:
            stop(proc)
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def measure(primary: int, sentinel: int, args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    body = payloads.encode(payloads.delivery("comments", "17841400000000001", "18111", 3))
    body = body + b" " * max(0, 1024 - len(body))
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": payloads.sign(body, bench_ingest.SECRET)}
    webs = {
        "bare Flask": ("bench.bare_app:app", f"redis://127.0.0.1:{primary}/0"),
        "igrelay, redis://": ("webhook:create_app()", f"redis://127.0.0.1:{primary}/0"),
        "igrelay, redis+sentinel:// + WAIT 1": (
            "webhook:create_app()",
            f"redis+sentinel://127.0.0.1:{sentinel}/bench/0",
        ),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in webs}
    run = bench_ingest.wrk if bench_ingest.shutil.which("wrk") else bench_ingest.load
    for _round in range(args.rounds):  # alternate, so drift on a shared machine hits each alike
        for name, (app, url) in webs.items():
            Redis(port=primary).flushdb()
            bench_ingest.REDIS_URL = url
            port = free_port()
            proc = bench_ingest.start_web(app, port)
            target = f"http://127.0.0.1:{port}/webhook"
            try:
                run(target, body, headers, 1.0, args.connections)  # warm up
                runs[name].append(run(target, body, headers, args.seconds, args.connections))
            finally:
                stop(proc)
    bare = runs["bare Flask"]
    rows = [("measure", "req/s", "p99", "vs bare Flask (median of rounds)")]
    for name, samples in runs.items():
        ratios = sorted(s["rps"] / b["rps"] for s, b in zip(samples, bare, strict=True))
        mid = bench_ingest.median_run(samples)
        note = f"{statistics.median(ratios):.0%} (rounds {ratios[0]:.0%}-{ratios[-1]:.0%}); errors {mid['errors']:.0f}"
        rows.append((name, f"{mid['rps']:.0f}", f"{mid['p99_ms']:.1f} ms", note))
    return rows


if __name__ == "__main__":
    main()
