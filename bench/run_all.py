"""Run every benchmark and write BENCHMARKS.md: one command, every figure beside its baseline.

python bench/run_all.py            # about 3-4 minutes on 2 cores; loopback only
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = [
    ("Receiver: web throughput, big deliveries, ingest worker", "bench/bench_ingest.py"),
    ("Insights: Graph calls and refresh throughput", "bench/bench_fetch.py"),
    ("Sinks: records/s and HTTP deliveries/s", "bench/bench_sinks.py"),
    ("End to end: latency and memory", "bench/bench_e2e.py"),
]


def machine() -> str:
    """One line on where the numbers come from."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("flask", "gunicorn", "rq", "redis", "requests"))
    redis_server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
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


def main() -> int:
    sections = []
    failed = False
    for title, script in BENCHES:
        started = time.monotonic()
        done = subprocess.run([sys.executable, script], cwd=ROOT, capture_output=True, text=True, timeout=900)
        took = time.monotonic() - started
        print(f"== {title} ({took:.0f} s)\n{done.stdout}", flush=True)
        if done.returncode != 0:
            failed = True
            sections.append(f"## {title}\n\nFAILED ({script}):\n\n```\n{done.stderr[-2000:]}\n```\n")
            continue
        sections.append(f"## {title}\n\n`python {script}` ({took:.0f} s)\n\n{to_markdown(done.stdout)}\n")
    text = (
        f"# Benchmarks\n\nMade by `python bench/run_all.py` on {time.strftime('%Y-%m-%d')}.\n"
        f"Machine: {machine()}.\nEvery figure is measured beside its baseline in the same run.\n\n"
        + "\n".join(sections)
    )
    (ROOT / "BENCHMARKS.md").write_text(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
