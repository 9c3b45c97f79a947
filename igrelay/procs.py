"""Processes that must not outlive the one that started them: free ports, the ``/proc`` tree, a supervisor.

Each child starts in a new session, so a Ctrl-C in the terminal reaches only the parent, which then
stops them newest first (a worker before the Redis it uses): SIGTERM to the child's process group, a
grace period, SIGKILL to the group; at the end SIGKILL to every process it saw below itself (RQ's
work horses run in process groups of their own, so the tree is read from ``/proc``). On Linux each
child also gets ``PR_SET_PDEATHSIG``, so not even a SIGKILLed parent leaves them behind.
``igrelay dev`` supervises its children with it; the tests and benchmarks use its port and tree helpers.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GRACE = 10.0  # seconds between SIGTERM and SIGKILL

ProcessTable = Mapping[int, tuple[int, str, str]]  # {pid: (ppid, state, start time)}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    """True when ``host:port`` can be bound now (with SO_REUSEADDR, as gunicorn binds)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def process_table() -> dict[int, tuple[int, str, str]]:
    """``{pid: (ppid, state, start time)}`` from ``/proc`` (empty where there is no ``/proc``)."""
    table = {}
    for entry in Path("/proc").glob("[0-9]*") if Path("/proc/self/stat").exists() else ():
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        table[int(entry.name)] = (int(fields[1]), fields[0], fields[19])
    return table


def descendants(root: int, table: ProcessTable | None = None) -> dict[int, str]:
    """``{pid: start time}`` of every live process below ``root`` (read from ``/proc`` unless given)."""
    table = process_table() if table is None else table
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, state, start) in table.items():
            if ppid == parent and pid not in found and state != "Z":
                found[pid] = start
                frontier.append(pid)
    return found


def signal_group(pid: int, signum: int) -> None:
    """Signal the process group ``pid`` leads (a child started in a session of its own), if it is there."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies (Linux ``prctl``)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


@dataclass
class Child:
    """One started process."""

    name: str
    proc: subprocess.Popen[Any]


class Supervisor:
    """Starts children and makes sure none of them, nor anything they started, outlives it."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self.seen: dict[int, str] = {}

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str], **popen: Any) -> Child:
        """Start ``argv`` in a new session; ``popen`` is passed to ``Popen`` (e.g. ``stdout``)."""
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        proc = subprocess.Popen(list(argv), env=dict(env), start_new_session=True, preexec_fn=preexec, **popen)
        child = Child(name, proc)
        self.children.append(child)
        return child

    def exited(self) -> Child | None:
        """The first child that is no longer running, if any."""
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def remember(self) -> None:
        """Note every process below this one, so ``stop`` can find orphans too."""
        self.seen.update(descendants(os.getpid()))

    def stop(self, grace: float = GRACE) -> None:
        """Newest first (the worker before its Redis): SIGTERM each group, wait ``grace``, SIGKILL what is left."""
        self.remember()
        for child in reversed(self.children):
            signal_group(child.proc.pid, signal.SIGTERM)
            try:
                child.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
            self.remember()
            signal_group(child.proc.pid, signal.SIGKILL)
        self._kill_leftovers()
        for child in self.children:
            signal_group(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
            for stream in (child.proc.stdout, child.proc.stderr):
                if stream is not None:
                    stream.close()

    def _kill_leftovers(self) -> None:
        table = process_table()
        for pid, start in self.seen.items():
            if pid in table and table[pid][2] == start and table[pid][1] != "Z":
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
