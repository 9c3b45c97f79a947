"""Fault: behind Redis Sentinel, the primary is killed (-9) under a stream of deliveries; web and worker follow."""

from __future__ import annotations

import time

import requests

from config import contract
from tests.faults.conftest import base_env, comment_delivery, comment_rows, signature
from tests.support.procs import wait_until
from tests.support.sentinel import DOWN_AFTER_MS, deploy

AFTER_FAILOVER = 5.0  # seconds: 200s again at most this long after the sentinels named the new primary
SETTLE = 30.0


def test_web_and_worker_follow_a_sentinel_failover(procs, tmp_path):
    """A primary and two replicas (AOF) and three sentinels on loopback; gunicorn and one ``igrelay worker`` on
    ``redis+sentinel://``. The primary is SIGKILLed during a stream of signed deliveries: the web answers 503 while
    there is no primary (and WAIT 1 keeps it from answering 200 for a delivery no replica holds), 200 again within
    5 s of the failover; every delivery answered 200 is processed once by the same worker process."""
    dep = deploy(procs, tmp_path, replicas=2)
    env = base_env(tmp_path, REDIS_URL=dep.url)
    _web, url = procs.web(env)
    worker = procs.worker(env)
    db = tmp_path / "records.sqlite3"
    session = requests.Session()
    sent: list[str] = []
    waiting: list[tuple[bytes, list[str]]] = []
    answers: list[tuple[float, int]] = []

    def post(body: bytes, ids: list[str]) -> int:
        try:
            status = session.post(url + "/webhook", data=body, headers=signature(body), timeout=5).status_code
        except requests.RequestException:
            status = 0
        answers.append((time.monotonic(), status))
        (sent.extend(ids) if status == 200 else waiting.append((body, ids)))
        return status

    # Ticks only run when the worker's scheduler moves them from the scheduled registry: it talks to Sentinel too.
    primary = dep.client(dep.primary)
    assert wait_until(lambda: primary.exists(contract.TICK_ALIVE), 20, 0.5) is not None, worker.text()[-2000:]
    end = time.monotonic() + 2
    while time.monotonic() < end:
        assert post(*comment_delivery(2)) == 200
        time.sleep(0.02)

    old = dep.primary
    killed = time.monotonic()
    dep.nodes[old].kill()
    switched = None
    while time.monotonic() - killed < 60:
        post(*comment_delivery(2))
        if switched is None and dep.master_port() not in (None, old):
            switched = time.monotonic()
        if switched and time.monotonic() - switched > AFTER_FAILOVER + 2:
            break
        time.sleep(0.02)
    assert switched is not None, "no failover"
    after = [(t, s) for t, s in answers if t >= killed]
    first_ok = next((t for t, s in after if s == 200), None)
    down = [s for t, s in after if first_ok is None or t < first_ok]
    assert first_ok is not None and first_ok - switched <= AFTER_FAILOVER, (first_ok, switched)
    assert all(500 <= s < 600 for s in down), down
    print(
        f"sentinel failover: new primary named {switched - killed:.1f} s after the kill "
        f"(down-after {DOWN_AFTER_MS} ms); deliveries refused (503) for {first_ok - killed:.1f} s, "
        f"{len(down)} of them; 200 again {max(0.0, first_ok - switched):.1f} s after the failover"
    )

    while waiting:  # Meta's retries
        assert post(*waiting.pop(0)) == 200
    session.close()
    assert wait_until(lambda: set(comment_rows(db)) >= set(sent), SETTLE, 0.5) is not None
    rows = comment_rows(db)
    assert set(rows) == set(sent) and set(rows.values()) == {1}
    assert worker.popen.poll() is None, worker.text()[-3000:]
    new = dep.client(dep.master_port() or 0)
    new.delete(contract.TICK_ALIVE)  # the next tick writes it again
    assert wait_until(lambda: new.exists(contract.TICK_ALIVE), 20, 0.5) is not None, "no tick after the failover"
    assert "unhandled exception" not in worker.text() and "raised an exception" not in worker.text()
