"""The tests' one process harness: real igrelay, gunicorn and redis-server processes, each in a session of
its own with its output in a log file, and every process of it signalled at once the way a PaaS treats a
dyno. The ``procs`` fixture (tests/conftest.py) kills every tree it started in teardown.

"Every process of it" means the process, its group and every descendant: RQ's work horse calls ``setpgrp``
and leaves the worker's process group, so a group signal alone would spare it. Everything listens on
127.0.0.1.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from redis import Redis

from igrelay.procs import descendants, free_port  # the /proc walker and free ports, shared with igrelay dev

ROOT = Path(__file__).resolve().parents[2]


# --- the /proc walker and free ports -----------------------------------------------------------


def signal_all(pids: list[int], sig: int) -> None:
    """``sig`` to each of ``pids`` and to the process group it leads, ignoring those already gone."""
    for target in pids:
        for kill in (os.killpg, os.kill):
            try:
                kill(target, sig)
            except (ProcessLookupError, PermissionError):
                pass


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.2) -> float | None:
    """Poll ``predicate`` until it is truthy; seconds it took, or ``None`` after ``timeout``."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(interval)


def procfile_command(name: str, env: dict[str, str] | None = None) -> list[str]:
    """The Procfile's ``name`` line as argv, its program found on ``env``'s PATH (the venv's first)."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(name + ":"):
            argv = shlex.split(line.split(":", 1)[1])
            path = (env or os.environ).get("PATH")
            return [shutil.which(argv[0], path=path) or argv[0], *argv[1:]]
    raise AssertionError(f"no {name} process in Procfile")


# --- one process (tree) ------------------------------------------------------------------------


class Proc:
    """A process started in its own session; stdout+stderr in ``log`` (stderr in ``err`` when given)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path, cwd: Path, err: Path | None) -> None:
        self.name, self.log, self.err = name, log, err
        self.worker_name = ""  # the RQ worker name, for workers
        self._out = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self._err = open(err, "ab") if err else None  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=self._out, stderr=self._err or subprocess.STDOUT, start_new_session=True
        )
        self.pid = self.popen.pid
        self.seen: set[int] = {self.pid}  # every process of the tree seen so far (horses outlive a killed parent)

    def tree(self) -> list[int]:
        """The process and its descendants now, remembered in ``seen``."""
        if self.popen.poll() is None:
            self.seen |= {self.pid, *descendants(self.pid)}
        return sorted(self.seen)

    def alive(self) -> bool:
        return any(alive(pid) for pid in self.tree())

    def wait(self, timeout: float) -> int:
        """The exit status of the process itself, once it exited (``TimeoutExpired`` after ``timeout``)."""
        return self.popen.wait(timeout=timeout)

    def send_signal(self, sig: int) -> None:
        """``sig`` to the process alone, as a terminal's Ctrl-C or a supervisor would send it."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the process group only (e.g. SIGSTOP/SIGCONT to a redis-server)."""
        signal_all([self.pid], sig)

    def freeze(self) -> None:
        """SIGSTOP every process of it (to look at its state in Redis without it moving on)."""
        signal_all([self.pid], signal.SIGSTOP)
        signal_all(self.tree(), signal.SIGSTOP)

    def thaw(self) -> None:
        signal_all(self.tree(), signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL every process of it at once, as a PaaS kills a dyno: stopped first so it cannot fork."""
        signal_all([self.pid], signal.SIGSTOP)
        signal_all(self.tree(), signal.SIGKILL)
        self.popen.wait(timeout=10)
        wait_until(lambda: not any(alive(pid) for pid in self.seen), 10, 0.02)

    def restart_heroku_style(self, grace: float = 30.0) -> float:
        """SIGTERM to every process of it, SIGKILL to survivors after ``grace`` (a Heroku-style restart);
        seconds until all were gone."""
        start = time.monotonic()
        signal_all(self.tree(), signal.SIGTERM)
        signal_all(self.tree(), signal.SIGCONT)  # in case it was frozen: it now handles the SIGTERM where it stood
        if wait_until(lambda: not self.alive(), grace, 0.05) is None:
            signal_all(self.tree(), signal.SIGKILL)
        self.popen.wait(timeout=10)
        return time.monotonic() - start

    def stop(self) -> None:
        """Kill what is left of it and close its log."""
        if self.alive() or self.popen.poll() is None:
            self.kill()
        self._out.close()
        if self._err:
            self._err.close()

    def text(self) -> str:
        """Its output so far (stdout+stderr, or stdout alone when stderr has a file of its own)."""
        self._out.flush()
        return self.log.read_text(errors="replace")

    def lines(self) -> list[str]:
        return self.text().splitlines()


# --- the processes of one test -----------------------------------------------------------------


class Procs:
    """Starts igrelay workers, gunicorn, ``igrelay`` commands and redis-servers; ``close()`` kills them all."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.all: list[Proc] = []
        self.count = 0

    def start(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None, split: bool = False
    ) -> Proc:
        """``argv`` in a session of its own, logged to ``NN-name.log`` (stderr to ``NN-name.stderr`` if ``split``)."""
        self.count += 1
        stem = self.tmp_path / f"{self.count:02d}-{name}"
        err = stem.with_suffix(".stderr") if split else None
        proc = Proc(name, argv, env, stem.with_suffix(".log"), cwd or self.tmp_path, err)
        self.all.append(proc)
        return proc

    def worker(self, env: dict[str, str], name: str | None = None, burst: bool = False) -> Proc:
        """The Procfile's worker (``igrelay worker``: HerokuWorker with the scheduler), named ``name``."""
        name = name or f"tests-{os.getpid()}-{self.count + 1}"
        argv = procfile_command("worker", env) + ["--name", name] + (["--burst"] if burst else [])
        proc = self.start(name, argv, env)
        proc.worker_name = name
        return proc

    def run_burst(self, env: dict[str, str], timeout: float = 120) -> Proc:
        """``igrelay worker --burst`` to completion."""
        proc = self.worker(env, burst=True)
        proc.wait(timeout)
        return proc

    def web(self, env: dict[str, str], loopback: bool = True) -> tuple[Proc, str]:
        """The Procfile's web line (gunicorn) on a free ``PORT``, bound to 127.0.0.1 only unless ``loopback``
        is False (then where its config binds); waits for /healthz."""
        port = free_port()
        env = {**env, "PORT": str(port), "WEB_CONCURRENCY": env.get("WEB_CONCURRENCY", "2")}
        argv = procfile_command("web", env) + (["--bind", f"127.0.0.1:{port}"] if loopback else [])
        proc = self.start("web", argv, env, cwd=ROOT)
        url = f"http://127.0.0.1:{port}"
        if wait_until(lambda: answers(url + "/healthz"), 20, 0.1) is None:
            raise AssertionError("gunicorn did not start:\n" + proc.text()[-3000:])
        return proc, url

    def redis_server(self, port: int, data_dir: Path, appendonly: bool = False) -> Proc:
        """A private redis-server on 127.0.0.1:``port`` (never the machine's shared one)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "yes", "--appendfsync", "always"] if appendonly else ["--appendonly", "no"]
        argv += ["--dir", str(data_dir), "--protected-mode", "yes"]
        proc = self.start(f"redis-{port}", argv, dict(os.environ))
        if wait_until(lambda: _pings(port), 10, 0.05) is None:
            raise AssertionError("redis-server did not start:\n" + proc.text()[-2000:])
        return proc

    def close(self) -> None:
        for proc in reversed(self.all):
            if proc.popen.returncode is None and proc.name.startswith("redis-"):
                proc.signal_group(signal.SIGCONT)  # let a stopped (hung) Redis go
            proc.stop()


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:  # refused while starting, or slow to answer on a loaded machine
        return False


def _pings(port: int) -> bool:
    client = Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()
