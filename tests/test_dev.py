"""``igrelay dev`` as a user runs it: it comes up, a simulated comment becomes records, and stopping it
(Ctrl-C, or a child dying) leaves no process behind."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
import requests

from tests.support.procs import Procs, alive, descendants, free_port, wait_until
from tests.test_cli import cli_env, igrelay

DEMO_ACCOUNT, DEMO_MEDIA = "17841400000000001", "18000000000000001"


class Dev:
    """``igrelay dev`` on a free port (a process of ``procs``); ``banner`` is its stdout so far."""

    def __init__(self, procs: Procs, **env: str) -> None:
        argv = [sys.executable, "-m", "igrelay", "dev", "--port", str(free_port())]
        self.proc = procs.start("dev", argv, cli_env(**env), split=True)
        assert self.proc.err is not None
        self.log = self.proc.err
        if wait_until(lambda: self.ready() or self.proc.popen.poll() is not None, 40) is None or not self.ready():
            self.proc.kill()
            raise AssertionError("igrelay dev did not come up:\n" + self.log.read_text()[-3000:])

    @property
    def banner(self) -> list[str]:
        return self.proc.lines()

    def ready(self) -> bool:
        """True once the banner's last line ("stop ...") is out."""
        return any(line.lstrip().startswith("stop") for line in self.banner)

    def stop(self, signum: int | None) -> int:
        """Send ``signum`` (unless None) to ``igrelay dev`` alone, as Ctrl-C would; its exit status."""
        if signum is not None:
            self.proc.send_signal(signum)
        return self.proc.wait(40)


def field(lines: list[str], name: str) -> str:
    """The value of a banner line."""
    return next(line.split(None, len(name.split()))[-1] for line in lines if line.strip().startswith(name))


def tree(root: int) -> dict[int, str]:
    """``{pid: command name}`` of every live process below ``root`` (read from /proc)."""
    found = {}
    for pid in descendants(root):
        try:
            found[pid] = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:  # gone meanwhile
            continue
    return {pid: name for pid, name in found.items() if alive(pid)}


def rows(path: Path) -> list[tuple[str, str, str]]:
    """(kind, trigger, media_id) of every record in the SQLite sink (none while it does not exist)."""
    if not path.exists():
        return []
    with closing(sqlite3.connect(path, timeout=5)) as conn:
        try:
            return conn.execute("SELECT kind, trigger, media_id FROM records").fetchall()
        except sqlite3.OperationalError:  # created, but its tables not yet
            return []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_dev_turns_a_comment_into_records_and_ctrl_c_stops_everything(tmp_path: Path, procs: Procs) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "records.sqlite3"
    dev = Dev(procs, IGRELAY_SINKS=f"sqlite:///{db}", IGRELAY_DEBOUNCE_SECONDS="1")
    banner = dev.banner
    try:
        url, token = field(banner, "webhook URL").split()[0], field(banner, "verify token")
        assert "sandbox" in field(banner, "Graph API") and f"sqlite:///{db}" in field(banner, "records go to")
        challenge = requests.get(
            url, params={"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "c1"}
        )
        assert challenge.text == "c1"
        console, password = field(banner, "console").split()[0], field(banner, "console").split()[-1].rstrip(")")
        session = requests.Session()
        form = session.get(console + "/login").text
        csrf = form.split('name="csrf_token" value="')[1].split('"')[0]
        logged = session.post(console + "/login", data={"password": password, "csrf_token": csrf})
        assert logged.status_code == 200 and "Overview" in logged.text
        sent = igrelay(
            "simulate", "comments", "--url", url, "--account", DEMO_ACCOUNT, "--media", DEMO_MEDIA, cwd=tmp_path
        )
        assert sent.returncode == 0 and "1/1 deliveries answered 200" in sent.stdout
        deadline = time.monotonic() + 30
        wanted = {("webhook_event", "comments"), ("media_insights", DEMO_MEDIA)}
        while time.monotonic() < deadline and not wanted <= {
            (k, t if k == "webhook_event" else m) for k, t, m in rows(db)
        }:
            time.sleep(0.5)
        assert wanted <= {(k, t if k == "webhook_event" else m) for k, t, m in rows(db)}
        children = tree(dev.proc.pid)
        assert {"redis-server"}.isdisjoint(children.values()) and len(
            children
        ) >= 5  # web x3, worker, scheduler, sandbox
    finally:
        code = dev.stop(signal.SIGINT)
    assert code == 0, dev.log.read_text()[-2000:]
    assert [pid for pid in children if alive(pid)] == []


@pytest.mark.faults
@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_dev_starts_its_own_redis_and_stops_when_a_child_dies(procs: Procs) -> None:
    dev = Dev(procs, REDIS_URL="redis://127.0.0.1:1/0")
    banner = dev.banner
    try:
        assert "private redis-server" in field(banner, "Redis")
        url = field(banner, "webhook URL").split()[0]
        assert requests.get(url.replace("/webhook", "/readyz"), timeout=5).status_code == 200
        children = tree(dev.proc.pid)
        [redis_pid] = [pid for pid, name in children.items() if name == "redis-server"]
        [worker_pid] = [p for p in children if _ppid(p) == dev.proc.pid and _cmdline(p).endswith("-m igrelay worker")]
        os.kill(worker_pid, signal.SIGKILL)
        assert dev.proc.wait(40) == 2
    finally:
        dev.stop(signal.SIGTERM)
    errors = dev.log.read_text().strip().splitlines()
    assert errors[-1] == "igrelay dev: worker exited with status -9; everything else it started was stopped"
    assert not alive(redis_pid) and [pid for pid in children if alive(pid)] == []


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def test_dev_says_how_to_install_redis_when_there_is_none(tmp_path: Path) -> None:
    env = {"REDIS_URL": "redis://127.0.0.1:1/0", "PATH": str(Path(sys.executable).parent)}
    done = igrelay("dev", "--port", str(free_port()), cwd=tmp_path, **env)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        "igrelay dev: no Redis answers at redis://127.0.0.1:1/0; install Redis"
    )


def test_dev_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = igrelay("dev", "--port", str(port), cwd=tmp_path)
    assert (
        done.returncode == 2
        and done.stderr.strip() == f"igrelay dev: port {port} on 127.0.0.1 is in use: stop what uses it or pass --port"
    )
