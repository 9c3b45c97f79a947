"""Process helpers for tests that kill workers the way a PaaS kills a dyno."""

import os
import signal

from igrelay.procs import descendants  # every live process below a pid, read from /proc


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
