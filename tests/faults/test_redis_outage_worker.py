"""Fault: Redis goes away for 3 s, 30 s and 90 s under a stream of deliveries; one ``igrelay worker`` rides it out."""

from __future__ import annotations

import json
import time

import requests
from redis import Redis

from tests.faults.conftest import base_env, comment_delivery, comment_rows, inbox_state, signature, stuck
from tests.support.procs import free_port, wait_until

OUTAGES = (3, 30, 90)  # seconds Redis is down
RECOVERY_BOUND = 10.0  # seconds from Redis back to every delivery answered 200 processed


def test_one_worker_rides_out_redis_outages_of_any_length(procs, tmp_path):
    """A private redis-server (AOF, fsync always) is SIGKILLed for 3, 30 and 90 s while signed deliveries stream
    through gunicorn; those answered 503 are re-sent once it is back, as Meta would. The worker started at the
    beginning (same pid, never restarted) processes every delivery answered 200, once, within 10 s of each
    return, and logs each outage once and each recovery once."""
    port = free_port()
    data_dir = tmp_path / "redis"
    server = procs.redis_server(port, data_dir, appendonly=True)
    redis_url = f"redis://127.0.0.1:{port}/0"
    env = base_env(tmp_path, REDIS_URL=redis_url)
    _web, url = procs.web(env)
    worker = procs.worker(env)
    db = tmp_path / "records.sqlite3"
    session = requests.Session()
    sent: list[str] = []  # comment ids of deliveries answered 200
    waiting: list[tuple[bytes, list[str]]] = []  # answered otherwise: Meta sends them again

    def post(body: bytes, ids: list[str]) -> int:
        try:
            status = session.post(url + "/webhook", data=body, headers=signature(body), timeout=5).status_code
        except requests.RequestException:
            status = 0
        if status == 200:
            sent.extend(ids)
        else:
            waiting.append((body, ids))
        return status

    def stream(seconds: float, every: float) -> list[int]:
        statuses, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            statuses.append(post(*comment_delivery(2)))
            time.sleep(every)
        return statuses

    took: dict[int, float | None] = {}
    for outage in OUTAGES:
        assert set(stream(2.0, 0.02)) == {200}
        server.kill()  # crashed: connections refused
        during = stream(outage, 0.25)
        assert during and all(500 <= s < 600 for s in during), during
        server = procs.redis_server(port, data_dir, appendonly=True)  # back, with its AOF
        back = time.monotonic()
        while waiting:  # Meta's retries
            assert post(*waiting.pop(0)) == 200
        stream(1.0, 0.02)
        wait_until(lambda: set(comment_rows(db)) >= set(sent), RECOVERY_BOUND + 20, 0.2)
        took[outage] = time.monotonic() - back if set(comment_rows(db)) >= set(sent) else None
        assert worker.popen.poll() is None, worker.text()[-3000:]
        print(f"outage {outage} s: every delivery answered 200 processed {took[outage]:.1f} s after Redis returned")
    session.close()

    assert all(t is not None and t <= RECOVERY_BOUND for t in took.values()), took
    private = Redis.from_url(redis_url)
    try:
        assert wait_until(lambda: not stuck(private) and inbox_state(private)["pending"] == 0, 30, 0.5) is not None
    finally:
        private.close()
    rows = comment_rows(db)
    assert set(rows) == set(sent) and set(rows.values()) == {1}
    events = [json.loads(line) for line in worker.lines() if line.startswith("{") and "redis_outage" in line]
    mine = [e["redis_outage"] for e in events if e.get("pid") == worker.pid]
    assert mine == ["start", "end"] * len(OUTAGES), events
    assert "unhandled exception" not in worker.text()
