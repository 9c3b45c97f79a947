"""Fault 6: the same changes delivered again and again, re-batched, concurrently, through real gunicorn."""

from __future__ import annotations

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from config import contract, stats
from igrelay import payloads
from tests.faults.conftest import ACCOUNT, base_env, comment_rows, inbox_state, signature, stuck, wait_settled

CHANGES = 300
SENDERS = 8  # threads, each sending every change once in its own batches; senders 0 and 1 send identical bodies


def _batches(changes: list[dict], seed: int) -> list[bytes]:
    rng = random.Random(seed)
    order = changes[:]
    rng.shuffle(order)
    bodies, start = [], 0
    while start < len(order):
        size = rng.randint(1, 40)
        chunk = order[start : start + size]
        start += size
        entry = {"id": ACCOUNT, "time": 1_700_000_000 + seed, "changes": chunk}  # a retry may carry another time
        bodies.append(json.dumps({"object": "instagram", "entry": [entry]}, separators=(",", ":")).encode())
    return bodies


def test_rebatched_concurrent_duplicates_are_processed_once(procs, redis, tmp_path):
    """300 changes each sent by 8 concurrent senders in differently cut batches (2,400 deliveries of a change,
    2 senders with byte-identical bodies) to gunicorn, 2 workers draining meanwhile: every change stored once
    (300 rows), 300 records emitted, 2,100 counted as duplicates."""
    env = base_env(tmp_path, WEB_CONCURRENCY="4")
    _web, url = procs.web(env)
    for _ in range(2):
        procs.worker(env)
    media = ["18100000000000001", "18100000000000002", "18100000000000003"]
    changes = [payloads.change("comments", media[i % 3], ACCOUNT) for i in range(CHANGES)]
    sent = {c["value"]["id"] for c in changes}

    def send(sender: int) -> list[int]:
        statuses = []
        with requests.Session() as session:
            for body in _batches(changes, seed=max(sender, 1)):  # senders 0 and 1 share a seed
                answer = session.post(url + "/webhook", data=body, headers=signature(body), timeout=10)
                statuses.append(answer.status_code)
        return statuses

    with ThreadPoolExecutor(SENDERS) as pool:
        statuses = [s for result in pool.map(send, range(SENDERS)) for s in result]
    assert set(statuses) == {200}
    db = tmp_path / "records.sqlite3"
    took, _rows = wait_settled(redis, db, sorted(sent), 60)
    assert took is not None, (stuck(redis), inbox_state(redis))
    assert inbox_state(redis) == {"length": 0, "pending": 0}
    time.sleep(1)  # anything still on its way would show now
    rows = comment_rows(db)
    assert set(rows) == sent and set(rows.values()) == {1}
    count = lambda name, **labels: int(redis.hget(contract.STATS, stats.field(name, **labels)) or 0)  # noqa: E731
    assert count("igrelay_records_total", kind="webhook_event") == CHANGES
    assert count("igrelay_changes_total", field="comments", outcome="new") == CHANGES
    assert count("igrelay_changes_total", field="comments", outcome="duplicate") == CHANGES * (SENDERS - 1)
