"""Fault 3: Redis stops (crashed: connection refused; hung: SIGSTOP) while deliveries arrive at gunicorn."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.faults.conftest import base_env, comment_delivery, comment_rows, inbox_state, signature, stuck
from tests.support.procs import free_port, wait_until

PER_PHASE = 16
OUTAGE_ANSWER_BOUND = 2.0  # seconds


def test_redis_outage_answers_5xx_fast_and_loses_nothing(procs, tmp_path):
    """Against a private redis-server (AOF, fsync always): 16 deliveries while it is SIGKILLed (refused) and
    16 while it is SIGSTOPped (hung) get 503 within 2 s each, 0 get 200; after it returns and Meta-style
    re-sends of the failed ones, a worker stores every change exactly once (0 lost, 0 duplicate rows)."""
    from redis import Redis

    port = free_port()
    data_dir = tmp_path / "redis"
    server = procs.redis_server(port, data_dir, appendonly=True)
    redis_url = f"redis://127.0.0.1:{port}/0"
    env = base_env(tmp_path, REDIS_URL=redis_url)
    _web, url = procs.web(env)
    session = requests.Session()
    answers: dict[str, list[tuple[int, float]]] = {}
    failed: list[bytes] = []
    sent: list[str] = []

    def post(body: bytes) -> tuple[int, float]:
        start = time.monotonic()
        try:
            status = requests.post(url + "/webhook", data=body, headers=signature(body), timeout=10).status_code
        except requests.RequestException:
            status = 0
        return status, time.monotonic() - start

    def phase(name: str, threads: int = 1) -> None:
        bodies = []
        for _ in range(PER_PHASE):
            body, ids = comment_delivery(2)
            bodies.append(body)
            sent.extend(ids)
        with ThreadPoolExecutor(threads) as pool:
            answers[name] = list(pool.map(post, bodies))
        failed.extend(b for b, (status, _s) in zip(bodies, answers[name], strict=True) if status != 200)

    phase("before")
    server.kill()  # crashed: connections refused
    phase("refused")
    server = procs.redis_server(port, data_dir, appendonly=True)  # back, with its AOF
    phase("after restart")
    server.signal_group(signal.SIGSTOP)  # hung: connections accepted by the kernel, never answered
    phase("hung", threads=2)  # 2 = WEB_CONCURRENCY, so no request waits behind another
    server.signal_group(signal.SIGCONT)
    phase("after hang")
    session.close()

    for name in ("refused", "hung"):
        statuses = [s for s, _t in answers[name]]
        slowest = max(t for _s, t in answers[name])
        assert all(500 <= s < 600 for s in statuses), (name, statuses)
        assert slowest <= OUTAGE_ANSWER_BOUND, (name, slowest)
    for name in ("before", "after restart", "after hang"):
        assert [s for s, _t in answers[name]] == [200] * PER_PHASE, (name, answers[name])
    assert len(failed) == 2 * PER_PHASE

    for body in failed:  # Meta retries what was not answered 200
        status, _t = post(body)
        assert status == 200
    procs.worker(env)
    db = tmp_path / "records.sqlite3"
    private = Redis.from_url(redis_url)
    try:
        done = wait_until(
            lambda: set(comment_rows(db)) >= set(sent) and not stuck(private) and inbox_state(private)["length"] == 0,
            60,
            0.5,
        )
        assert done is not None, (stuck(private), inbox_state(private))
    finally:
        private.close()
    rows = comment_rows(db)
    assert set(rows) == set(sent) and set(rows.values()) == {1}  # 5 phases x 16 deliveries x 2 changes, once each
