"""What the tests' processes share: the tests' Redis, the app secrets, and a clean environment.

``TEST_REDIS_URL`` is the tests' Redis database, emptied before and after each test that uses it:
``IGRELAY_TEST_REDIS_URL`` (default database 13 of the local Redis). Under pytest-xdist (``pytest -n N``)
each worker starts a ``redis-server`` of its own on a free loopback port instead, so parallel workers never
empty each other's database (nor anyone else's on a shared Redis); it stops when the worker ends.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redis import Redis

from tests.support.procs import free_port

SECRET = "test-app-secret-0123456789"
OTHER_SECRET = "test-instagram-app-secret-9876"
VERIFY_TOKEN = "test-verify-token"
SECRET_KEY = "test-secret-key-for-sealing-tokens-0123456789"
BIN = Path(sys.executable).parent  # the venv's bin: igrelay, gunicorn
# Settings of the caller's that must not leak into a process the tests start.
OWN_PREFIXES = ("META_", "IGRELAY_", "REDIS_URL", "GRAPH_", "IG_", "LOG_", "PORT", "WEB_")
_private: list[subprocess.Popen[bytes]] = []


def _private_redis() -> str:
    """A redis-server of this process's own on a free 127.0.0.1 port, without persistence; its URL."""
    if not shutil.which("redis-server"):
        raise RuntimeError("pytest -n needs redis-server (apt-get install redis-server); or run without -n")
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", tempfile.gettempdir()]
    _private.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True))
    atexit.register(stop_private_redis)
    client = Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    for _ in range(100):
        try:
            client.ping()
            return f"redis://127.0.0.1:{port}/0"
        except Exception:
            time.sleep(0.05)
        finally:
            client.close()
    raise RuntimeError(f"the test worker's redis-server on port {port} did not start")


def stop_private_redis() -> None:
    """Stop the redis-server ``_private_redis`` started, if any."""
    while _private:
        proc = _private.pop()
        proc.terminate()
        proc.wait(10)


def _test_redis_url() -> str:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # gw0, gw1, ...: set only in pytest-xdist's workers
        return _private_redis()
    return os.environ.get("IGRELAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


TEST_REDIS_URL = _test_redis_url()


def process_env(**extra: str) -> dict[str, str]:
    """The environment for an igrelay process: the caller's without its igrelay settings, the tests'
    Redis and secrets, the venv's bin first on PATH, unbuffered output; then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    env.update(
        META_APP_SECRET=SECRET,
        META_VERIFY_TOKEN=VERIFY_TOKEN,
        IGRELAY_SECRET_KEY=SECRET_KEY,
        REDIS_URL=TEST_REDIS_URL,
        PATH=f"{BIN}:{os.environ.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env
