"""Fault 2: Heroku-style restarts (SIGTERM to every process of the dyno, SIGKILL 30 s later) during a stream."""

from __future__ import annotations

import threading
import time

from tests.faults.conftest import base_env, describe_stuck, inbox_state, stream_with_strikes, stuck, wait_settled
from tests.support.procs import Proc

DELIVERIES = 1000
CHANGES_EACH = 2
FIRST_RESTART = 100  # deliveries before the first restart
RESTARTS = 20
# Usually settled 2-3 s after the last restart: a job cut short goes back to the front of the queue with its
# retries untouched (workers.runner.Worker). The bound covers one RQ window igrelay cannot close: a SIGTERM
# between a job's dequeue and its start leaves it in RQ's intermediate queue, which RQ's maintenance hands
# back after about a minute, then retries after its first interval.
SETTLE_BOUND = 150


def test_heroku_style_restarts_lose_and_duplicate_nothing(procs, redis, tmp_path):
    """1,000 signed deliveries (2,000 changes), 20 Heroku-style restarts mid-job with the new worker started at
    once: every old worker exits on SIGTERM alone within 10 s (the 30 s SIGKILL never needed), 0 changes
    lost, 0 duplicate rows, RQ registries and the inbox's pending list empty <= 150 s after the last restart."""
    exits: list[float] = []
    stoppers: list[threading.Thread] = []

    def restart(worker: Proc) -> None:
        """SIGTERM to every process, where each stands; SIGKILL 30 s later if need be."""
        stopper = threading.Thread(target=lambda: exits.append(worker.restart_heroku_style(grace=30)))
        stopper.start()
        stoppers.append(stopper)

    sent, last_restart, restarts = stream_with_strikes(
        procs, redis, base_env(tmp_path), restart, RESTARTS, DELIVERIES, CHANGES_EACH, FIRST_RESTART
    )
    for stopper in stoppers:
        stopper.join(35)
    took, rows = wait_settled(redis, tmp_path / "records.sqlite3", sent, SETTLE_BOUND)
    since = time.monotonic() - last_restart
    lost = set(sent) - set(rows)
    print(f"{len(exits)} restarts, exits {[round(e, 1) for e in exits]} s; settled {since:.0f} s after the last")
    assert not lost, f"{len(lost)} of {len(sent)} changes lost; stuck={stuck(redis)} inbox={inbox_state(redis)}"
    assert not {cid: n for cid, n in rows.items() if n > 1}, "changes stored more than once"
    assert len(rows) == len(sent) >= DELIVERIES * CHANGES_EACH
    assert restarts == len(exits) == RESTARTS and max(exits) <= 10
    assert took is not None and since <= SETTLE_BOUND, (describe_stuck(redis), inbox_state(redis))
