"""Process helpers the benchmarks share: processes in their own session, readiness."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
_LOG_DIR = tempfile.mkdtemp(prefix="igrelay-bench-")
LOGS: dict[int, Path] = {}  # pid -> its log file


def start(cmd: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    """``cmd`` in its own session; its output in NAME.log in $BENCH_LOG_DIR (a temporary directory if unset)."""
    log = Path(os.environ.get("BENCH_LOG_DIR") or _LOG_DIR) / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True)
    LOGS[proc.pid] = log
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group; SIGKILL it if it is still there after 30 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def wait_healthy(port: int, what: str = "web", proc: subprocess.Popen[bytes] | None = None) -> None:
    """Return once ``/healthz`` answers on ``port`` (10 s at most); else raise with ``proc``'s output."""
    for _ in range(100):
        if proc is not None and proc.poll() is not None:
            break
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except requests.RequestException:  # not listening yet, or accepted but not answering yet
            time.sleep(0.1)
    tail = LOGS[proc.pid].read_text(errors="replace")[-2000:] if proc is not None else ""
    raise RuntimeError(f"{what} did not start" + (f"; its output:\n{tail}" if tail else ""))
