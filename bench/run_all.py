"""Run every benchmark and write BENCHMARKS.md: one command, every figure beside its baseline.

    bin/bench                 # every benchmark, about 12 minutes on 2 cores; loopback only
    bin/bench ingest sinks    # only those (BENCHMARKS.md is left as it is)

A benchmark that fails has its error printed; the run then exits 1 naming it and leaves BENCHMARKS.md
as it is, so the file only ever holds a complete run.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = {
    "ingest": ("Receiver: web throughput, big deliveries, ingest worker", "bench/bench_ingest.py"),
    "forged": ("Forged deliveries: 4 MiB bodies refused, non-ASCII vs ASCII", "bench/bench_forged.py"),
    "fetch": ("Insights: Graph calls and refresh throughput", "bench/bench_fetch.py"),
    "sinks": ("Sinks: records/s and HTTP deliveries/s", "bench/bench_sinks.py"),
    "e2e": ("End to end: latency and memory", "bench/bench_e2e.py"),
    "onebox": ("One box: web and worker together, sustained rate", "bench/bench_onebox.py"),
    "backfill": ("Backfill: 2,000 media beside live comments", "bench/bench_backfill.py"),
    "sentinel": ("Receiver behind Redis Sentinel: the cost of WAIT 1", "bench/bench_sentinel.py"),
    "console": ("Console: page times over 100,000 records, /webhook with the console on", "bench/bench_console.py"),
    "accounts": (
        "Accounts at scale: tick cost and poll spread at 100, 1,000, 10,000 accounts",
        "bench/bench_accounts.py",
    ),
    "memory": ("Redis memory: bytes per media over 1,000,000 media, per account over 10,000", "bench/bench_memory.py"),
    "workers": ("Workers scale out: refreshes/s with 1, 2 and 4 worker processes", "bench/bench_workers.py"),
    "budget": ("Meta's budget: Graph calls per account and hour, and the sizing model", "bench/bench_budget.py"),
}


def machine() -> str:
    """One line on where the numbers come from."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("flask", "gunicorn", "rq", "redis", "requests"))
    try:
        redis_server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    except (OSError, IndexError):
        redis_server = "?"
    return (
        f"{platform.machine()}, {cpu}, {__import__('os').cpu_count()} CPUs; Python {platform.python_version()}; "
        f"{versions}; Redis {redis_server.removeprefix('v=')}"
    )


def to_markdown(output: str) -> str:
    """A benchmark's output as Markdown: ``a | b`` tables become tables, Markdown passes through,
    anything else (column-aligned text) is kept in a code block."""
    lines = [line for line in output.splitlines() if line.strip()]
    if any(line.startswith("|") for line in lines):
        return "\n".join(lines)
    rows = [line for line in lines if " | " in line]
    notes = [line for line in lines if " | " not in line]
    if not rows:
        return "```\n" + "\n".join(lines) + "\n```"
    cells = [[c.strip() for c in row.split(" | ")] for row in rows]
    out = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    out += ["| " + " | ".join(r) + " |" for r in cells[1:]]
    return "\n".join([*(f"{n}  " for n in notes), "", *out])


def run(title: str, script: str) -> tuple[str, str | None]:
    """Run one benchmark, printing its output; (its BENCHMARKS.md section, its error or None)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, script], cwd=ROOT, capture_output=True, text=True, timeout=900)
    took = time.monotonic() - started
    print(f"== {title} ({took:.0f} s)\n{done.stdout}", flush=True)
    if done.returncode != 0:
        error = done.stderr.strip()[-2000:] or f"exited with status {done.returncode} and no error output"
        print(f"{script} FAILED:\n{error}\n", file=sys.stderr, flush=True)
        return "", error
    return f"## {title}\n\n`python {script}` ({took:.0f} s)\n\n{to_markdown(done.stdout)}\n", None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the benchmarks; all of them write BENCHMARKS.md.")
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these: " + ", ".join(BENCHES))
    names = parser.parse_args(argv).names or list(BENCHES)
    if unknown := [n for n in names if n not in BENCHES]:
        parser.error(f"no benchmark {', '.join(unknown)} (there are {', '.join(BENCHES)})")
    sections, failed = [], []
    for name in names:
        title, script = BENCHES[name]
        section, error = run(title, script)
        sections.append(section)
        if error is not None:
            failed.append(script)
    if failed:
        print(f"run_all: failed: {', '.join(failed)} (BENCHMARKS.md left as it was)", file=sys.stderr)
        return 1
    if names != list(BENCHES):
        return 0
    text = (
        f"# Benchmarks\n\nMade by `bin/bench` (`bench/run_all.py`) on {time.strftime('%Y-%m-%d')}.\n"
        f"Machine: {machine()}.\nEvery figure is measured beside its baseline in the same run.\n\n"
        + "\n".join(sections)
    )
    (ROOT / "BENCHMARKS.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
