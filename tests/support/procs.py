"""Process helpers for tests that kill workers the way a PaaS kills a dyno."""

import os
import signal


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (RQ's work horse calls setpgrp, so it leaves the group)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def signal_all(pids: list[int], sig: int) -> None:
    """``sig`` to each of ``pids`` and to the process group it leads, ignoring those already gone."""
    for target in pids:
        for kill in (os.killpg, os.kill):
            try:
                kill(target, sig)
            except (ProcessLookupError, PermissionError):
                pass


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """``sig`` to ``pid``, its process group and every descendant: the whole dyno at once."""
    signal_all([pid, *descendants(pid)], sig)
