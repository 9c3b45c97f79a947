"""Process helpers the benchmarks share: processes in their own session, readiness."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from redis import Redis
from redis.exceptions import RedisError

ROOT = Path(__file__).resolve().parent.parent
# The Procfile's web line, run by this interpreter (no venv needed on PATH).
WEB = [sys.executable, "-m", "gunicorn", "--config", "config/gunicorn.conf.py", "webhook:create_app()"]


def igrelay_env(port: int, redis_url: str, secret: str, db: Path, graph_api_url: str, **extra: str) -> dict[str, str]:
    """The environment of a benchmark's igrelay web and worker processes: a SQLite sink at ``db``."""
    return dict(
        os.environ,
        PORT=str(port),
        META_APP_SECRET=secret,
        META_VERIFY_TOKEN="bench",
        REDIS_URL=redis_url,
        IGRELAY_SINKS=f"sqlite:///{db}",
        GRAPH_API_URL=graph_api_url,
        PYTHONPATH=str(ROOT),
        **extra,
    )


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


@contextmanager
def redis_server(maxmemory: str = "") -> Iterator[str]:
    """A private redis-server on a free loopback port for one benchmark (never the shared one); yields its URL."""
    from igrelay.procs import free_port

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="igrelay-bench-redis-") as data:
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--dir", data] + (["--maxmemory", maxmemory] if maxmemory else [])
        proc = start(argv, dict(os.environ), f"redis-{port}")
        try:
            for _ in range(100):
                try:
                    if Redis(port=port, socket_connect_timeout=0.5).ping():
                        break
                except RedisError:
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop(proc)
