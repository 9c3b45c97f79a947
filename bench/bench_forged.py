"""Forged deliveries: how long the webhook under gunicorn takes to refuse a 4 MiB body with a well-formed
but wrong signature, non-ASCII bodies (which also get the escaped form checked) against an ASCII body of
the same size. Loopback only.

    python bench/bench_forged.py [--requests 15]

Prints one table; the ASCII baseline is measured in the same run, against the same server.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_ingest import start_web  # noqa: E402
from bench.procs import stop  # noqa: E402
from igrelay.procs import free_port  # noqa: E402

SIZE = 4 * 1024 * 1024  # IGRELAY_MAX_BODY_BYTES' default: the largest body igrelay reads
FORGED = {"X-Hub-Signature-256": "sha256=" + "0" * 64, "Content-Type": "application/json"}
BODIES = {  # name: (body, whether the targets apply to it)
    "ASCII": (b"a" * SIZE, False),
    "non-ASCII (é)": (("é" * (SIZE // 2)).encode(), True),
    "emoji (4-byte UTF-8)": (("😀" * (SIZE // 4)).encode(), True),
    'mixed (" \\ é whitespace DEL)': (('"\\é\n\t\x7fa' * (SIZE // 8)).encode(), False),
}


def refusal_ms(url: str, n: int) -> dict[str, float]:
    """Median milliseconds for ``n`` forged POSTs of each body (each must be refused with 401), the bodies
    taking turns, so a slow spell of the shared machine hits them all alike."""
    session = requests.Session()
    times: dict[str, list[float]] = {name: [] for name in BODIES}
    for _ in range(n + 2):
        for name, (body, _targeted) in BODIES.items():
            t0 = time.perf_counter()
            answer = session.post(url, data=body, headers=FORGED, timeout=30)
            times[name].append(1000 * (time.perf_counter() - t0))
            assert answer.status_code == 401, answer.status_code
    session.close()
    return {name: statistics.median(ms[2:]) for name, ms in times.items()}  # the first two warm everything up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=15)
    args = parser.parse_args()
    port = free_port()
    proc = start_web("webhook:create_app()", port)
    try:
        url = f"http://127.0.0.1:{port}/webhook"
        results = refusal_ms(url, args.requests)
    finally:
        stop(proc)
    ascii_ms = results["ASCII"]
    rows = [("forged 4 MiB delivery refused (401)", "median", "vs ASCII", "target")]
    for name, (_body, targeted) in BODIES.items():
        ratio = results[name] / ascii_ms
        target = "baseline" if name == "ASCII" else "(no target)"
        if targeted:
            met = results[name] < 150 and ratio <= 3
            target = f"< 150 ms and <= 3x ASCII: {'met' if met else 'MISSED'}"
        rows.append((name, f"{results[name]:.1f} ms", f"{ratio:.1f}x", target))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
