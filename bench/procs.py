"""Process helpers the benchmarks share: processes in their own session, readiness."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def start(cmd: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    """``cmd`` in its own session; its output in $BENCH_LOG_DIR/NAME.log when that is set."""
    log_dir = os.environ.get("BENCH_LOG_DIR")
    out = open(Path(log_dir) / f"{name}.log", "wb") if log_dir else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group; SIGKILL it if it is still there after 30 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def wait_healthy(port: int, what: str = "web") -> None:
    """Return once ``/healthz`` answers on ``port`` (10 s at most)."""
    for _ in range(100):
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")
