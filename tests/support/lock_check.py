"""The deploy lock, checked as Heroku's Python buildpack uses it: ``requirements.txt`` pins every runtime
dependency pyproject.toml names, within its bounds, and a fresh venv made from it alone runs both Procfile
commands from the source tree (the web answers /healthz, the worker runs its first tick).

    python -m tests.support.lock_check      # bin/test runs it (not with --fast); about a minute

Uses the tests' Redis database (``IGRELAY_TEST_REDIS_URL``) and empties it after.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from redis import Redis

from config import contract
from tests.support.env import SECRET, TEST_REDIS_URL, VERIFY_TOKEN
from tests.support.procs import ROOT, Procs, answers, free_port, wait_until

LOCK = ROOT / "requirements.txt"


def pins() -> dict[str, str]:
    """``requirements.txt``'s ``name==version`` lines, by normalised name."""
    found = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", LOCK.read_text(), re.MULTILINE)
    return {_norm(name): version for name, version in found}


def drift() -> list[str]:
    """What pyproject.toml asks for that the lock does not pin, or pins out of bounds."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned, problems = pins(), []
    for line in project["dependencies"]:
        req = Requirement(line)
        version = pinned.get(_norm(req.name))
        if version is None:
            problems.append(f"{req.name} is not pinned")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} is outside {req.specifier}")
    return problems


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def procfile() -> dict[str, str]:
    """The Procfile's process types and their command lines."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line and not line.startswith("#"))


def run_from_lock(venv: Path, logs: Path) -> list[str]:
    """Start the Procfile's web and worker with ``venv``'s bin alone on PATH; what did not work."""
    commands = {kind: command.strip() for kind, command in procfile().items()}
    port = free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(logs),
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "META_APP_SECRET": SECRET,
        "META_VERIFY_TOKEN": VERIFY_TOKEN,
        "REDIS_URL": TEST_REDIS_URL,
        "IGRELAY_POLL_INTERVAL": "0",
        "PYTHONUNBUFFERED": "1",
    }
    procs, failures = Procs(logs), []
    redis = Redis.from_url(TEST_REDIS_URL)
    redis.flushdb()
    try:
        # As Heroku does: each command through a shell, from the app's root.
        web = procs.start("web", ["bash", "-c", commands["web"]], env, cwd=ROOT)
        worker = procs.start("worker", ["bash", "-c", commands["worker"]], env, cwd=ROOT)
        if wait_until(lambda: answers(f"http://127.0.0.1:{port}/healthz"), 30, 0.2) is None:
            failures.append(f"web ({commands['web']}) did not answer /healthz:\n{web.text()[-2000:]}")
        if wait_until(lambda: redis.exists(contract.TICK_ALIVE), 30, 0.2) is None:
            failures.append(f"worker ({commands['worker']}) ran no tick:\n{worker.text()[-2000:]}")
    finally:
        procs.close()
        redis.flushdb()
        redis.close()
    return failures


def main() -> int:
    if problems := drift():
        print("lock_check: requirements.txt is out of date (run bin/lock): " + "; ".join(problems), file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="igrelay-lock-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        install = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "-r", str(LOCK)]
        print("lock_check: " + shlex.join(install[:1] + install[4:]), file=sys.stderr)
        subprocess.run(install, check=True, cwd=tmp)
        failures = run_from_lock(venv, Path(tmp))
    for failure in failures:
        print(f"lock_check: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
