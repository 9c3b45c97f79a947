"""What the tests' processes share: the tests' Redis database, the app secrets, and a clean environment.

``IGRELAY_TEST_REDIS_URL`` (default database 13) names the tests' database; it is emptied before and after
each test that uses it. Under pytest-xdist (``pytest -n N``) worker ``gwK`` uses that database number plus
K, so N workers use N consecutive databases and never empty each other's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

SECRET = "test-app-secret-0123456789"
OTHER_SECRET = "test-instagram-app-secret-9876"
VERIFY_TOKEN = "test-verify-token"
BIN = Path(sys.executable).parent  # the venv's bin: igrelay, gunicorn
# Settings of the caller's that must not leak into a process the tests start.
OWN_PREFIXES = ("META_", "IGRELAY_", "REDIS_URL", "GRAPH_", "IG_", "LOG_", "PORT", "WEB_")


def worker_redis_url(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """``IGRELAY_TEST_REDIS_URL`` with its database moved up by the xdist worker's index, if any."""
    url = environ.get("IGRELAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    worker = environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ... only under pytest -n
    if not worker:
        return url
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0) + int(worker.removeprefix("gw"))
    return urlunsplit(parts._replace(path=f"/{db}"))


TEST_REDIS_URL = worker_redis_url()


def process_env(**extra: str) -> dict[str, str]:
    """The environment for an igrelay process: the caller's without its igrelay settings, the tests'
    Redis and secrets, the venv's bin first on PATH, unbuffered output; then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    env.update(
        META_APP_SECRET=SECRET,
        META_VERIFY_TOKEN=VERIFY_TOKEN,
        REDIS_URL=TEST_REDIS_URL,
        PATH=f"{BIN}:{os.environ.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env
