"""Helpers for the fault-injection suite: real ``igrelay worker`` and gunicorn processes and private
``redis-server``s (the ``procs`` fixture, tests/support/procs.py), signed deliveries, and readers for the
SQLite sink and RQ's registries. Every test here carries the ``faults`` marker.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from config import contract
from config.rq import QUEUES
from igrelay import payloads
from tests.support.env import SECRET, process_env
from tests.support.procs import Proc, Procs, free_port, wait_until

ACCOUNT = "17841400000000001"
HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/faults/ kills, restarts or breaks processes: mark it ``faults``."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.faults)


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for igrelay processes: the tests' Redis db, a SQLite sink, Graph on a closed
    loopback port (nothing may leave the machine), no polling, a debounce longer than any test."""
    env = process_env(
        IGRELAY_SINKS=f"sqlite:///{tmp_path}/records.sqlite3",
        GRAPH_API_URL=f"http://127.0.0.1:{free_port()}",
        IGRELAY_POLL_INTERVAL="0",
        IGRELAY_DEBOUNCE_SECONDS="3600",
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


# --- deliveries ---------------------------------------------------------------------------------


def comment_delivery(count: int, media_id: str = "18100000000000001", account: str = ACCOUNT) -> tuple[bytes, list]:
    """A signed-ready body with ``count`` new comments; returns (body, comment ids)."""
    payload = payloads.delivery("comments", account, media_id, count)
    ids = [c["value"]["id"] for c in payload["entry"][0]["changes"]]
    return payloads.encode(payload), ids


def signature(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Hub-Signature-256": payloads.sign(body, secret), "Content-Type": "application/json"}


# --- what landed where --------------------------------------------------------------------------


def sink_rows(path: Path) -> list[tuple[str, str, dict]]:
    """``(id, kind, record)`` of every row of the SQLite sink's ``records`` table."""
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return [(rid, kind, json.loads(data)) for rid, kind, data in conn.execute("SELECT id, kind, data FROM records")]
    except sqlite3.OperationalError:  # the sink has not created its tables yet
        return []
    finally:
        conn.close()


def comment_rows(path: Path) -> Counter[str]:
    """Rows per comment id among the sink's ``webhook_event`` records (a change stored twice shows 2)."""
    return Counter(str(rec["event"].get("comment_id")) for _id, kind, rec in sink_rows(path) if kind == "webhook_event")


def stuck(redis: Redis) -> dict[str, int]:
    """Non-empty RQ structures that mean unfinished or failed work, per key (ticks excluded)."""
    out: dict[str, int] = {}
    for q in QUEUES:
        for key, n in (
            (f"rq:wip:{q}", redis.zcard(f"rq:wip:{q}")),
            (f"rq:failed:{q}", redis.zcard(f"rq:failed:{q}")),
            (f"rq:queue:{q}:intermediate", redis.llen(f"rq:queue:{q}:intermediate")),
        ):
            if n:
                out[key] = n
        waiting = [j for j in redis.lrange(f"rq:queue:{q}", 0, -1) if not j.startswith(b"tick-")]
        scheduled = [j for j in redis.zrange(f"rq:scheduled:{q}", 0, -1) if not j.startswith(b"tick-")]
        if waiting:
            out[f"rq:queue:{q}"] = len(waiting)
        if scheduled:
            out[f"rq:scheduled:{q}"] = len(scheduled)
    return out


def wait_settled(redis: Redis, db: Path, sent: list[str], bound: float) -> tuple[float | None, dict[str, int]]:
    """Wait (``bound`` s at most) until every change sent has its row in the SQLite sink ``db`` and RQ's
    registries and the inbox's pending list are empty; (seconds it took or ``None``, rows per change id)."""

    def settled() -> bool:
        return set(comment_rows(db)) >= set(sent) and not stuck(redis) and inbox_state(redis)["pending"] == 0

    took = wait_until(settled, bound + 5, 1.0)
    return took, comment_rows(db)


def describe_stuck(redis: Redis) -> list[dict[str, Any]]:
    """What each job ``stuck`` counts is, for a failure message: function, status, retries, when due, error."""
    out = []
    for q in QUEUES:
        due = {j: s for j, s in redis.zrange(f"rq:scheduled:{q}", 0, -1, withscores=True)}
        ids = set(due) | set(redis.lrange(f"rq:queue:{q}", 0, -1)) | set(redis.zrange(f"rq:failed:{q}", 0, -1))
        for job_id in sorted(j for j in ids if not j.startswith(b"tick-")):
            fields = redis.hmget(b"rq:job:" + job_id, "description", "status", "retries_left", "meta", "exc_info")
            desc, status, retries, meta, exc = (f.decode(errors="replace") if f else None for f in fields)
            seen = {"id": job_id.decode(), "job": (desc or "")[:60], "status": status, "retries_left": retries}
            if job_id in due:
                seen["due_in_s"] = round(due[job_id] - time.time())
            out.append({**seen, "meta": (meta or "")[:80], "exc": (exc or "")[-200:]})
    return out


def inbox_state(redis: Redis) -> dict[str, int]:
    """Entries left in the inbox stream and entries read but not acknowledged."""
    if not redis.exists(contract.INBOX):
        return {"length": 0, "pending": 0}
    return {"length": redis.xlen(contract.INBOX), "pending": redis.xpending(contract.INBOX, "ingest")["pending"]}


def worker_registered(redis: Redis, name: str) -> bool:
    return bool(redis.exists(f"rq:worker:{name}"))


def worker_busy(redis: Redis, name: str) -> bool:
    """True while a job of the worker called ``name`` runs (its status is still ``started``). The worker's
    ``state`` field and its executions say busy several milliseconds longer, while the parent logs."""
    running = redis.smembers(f"rq:worker:{name}:executions")
    return any(redis.hget(f"rq:job:{m.split(b':')[0].decode()}", "status") == b"started" for m in running)


# --- secrets ------------------------------------------------------------------------------------


def _decoded(blob: bytes) -> list[bytes]:
    """``blob`` plus what RQ hides in it: zlib (job data, exc_info) and base64+zlib (rq:results)."""
    out = [blob]
    try:
        out.append(zlib.decompress(blob))
    except zlib.error:
        pass
    try:
        raw = base64.b64decode(blob, validate=True)
        out.append(raw)
        out.append(zlib.decompress(raw))
    except (binascii.Error, ValueError, zlib.error):
        pass
    return out


def redis_values(redis: Redis) -> Iterator[tuple[bytes, bytes]]:
    """``(key, blob)`` for the key name and every value of every key in the db, decoded as above."""
    for key in redis.scan_iter(count=1000):
        kind = redis.type(key)
        parts: list[bytes] = [key]
        if kind == b"string":
            parts.append(redis.get(key) or b"")
        elif kind == b"hash":
            parts += [b for kv in redis.hgetall(key).items() for b in kv]
        elif kind == b"list":
            parts += redis.lrange(key, 0, -1)
        elif kind == b"set":
            parts += list(redis.smembers(key))
        elif kind == b"zset":
            parts += [m for m, _score in redis.zrange(key, 0, -1, withscores=True)]
        elif kind == b"stream":
            parts += [b for _id, fields in redis.xrange(key) for kv in fields.items() for b in kv]
        for part in parts:
            for blob in _decoded(part):
                yield key, blob


def orphaned_jobs(redis: Redis) -> list[str]:
    """Jobs waiting or running by their status but in no queue or registry: lost work."""
    placed: set[bytes] = set()
    for q in QUEUES:
        placed |= set(redis.lrange(f"rq:queue:{q}", 0, -1))
        placed |= set(redis.lrange(f"rq:queue:{q}:intermediate", 0, -1))  # taken, not yet registered
        for registry in ("wip", "scheduled", "failed", "deferred"):
            placed |= {m.split(b":")[0] for m in redis.zrange(f"rq:{registry}:{q}", 0, -1)}
    out = []
    for key in redis.scan_iter("rq:job:*", count=1000):
        if redis.type(key) == b"hash" and redis.hget(key, "status") in (b"queued", b"started", b"scheduled"):
            job_id = key.split(b":", 2)[2]
            if job_id not in placed:
                out.append(job_id.decode())
    return out


def stream_with_strikes(
    procs: Procs,
    redis: Redis,
    env: dict[str, str],
    strike: Callable[[Proc], None],
    strikes: int,
    deliveries: int = 1000,
    changes_each: int = 2,
    first: int = 100,
) -> tuple[list, float, int]:
    """Post signed deliveries through the app; from delivery ``first`` on, catch each worker while a job runs
    (frozen, then looked at), ``strike`` it and start a new one, ``strikes`` times. At least ``deliveries`` are
    sent, more only while strikes are still to come. Returns (comment ids sent, monotonic time of the last
    strike, strikes done)."""
    from config.settings import Settings
    from webhook import create_app

    client = create_app(Settings.from_env({**env, "LOG_LEVEL": "WARNING"})).test_client()
    worker = procs.worker(env)
    done, last, sent = 0, 0.0, []
    for i in range(deliveries + 300 * strikes):  # a new worker takes ~1.5 s to start: ~100 deliveries
        if i >= deliveries and done >= strikes:
            break
        body, ids = comment_delivery(changes_each)
        answer = client.post("/webhook", data=body, headers=signature(body))
        assert answer.status_code == 200, answer.data
        sent += ids
        if i >= first and done < strikes and worker_registered(redis, worker.worker_name):
            worker.freeze()
            if worker_busy(redis, worker.worker_name):
                strike(worker)
                done, last = done + 1, time.monotonic()
                worker = procs.worker(env)  # the new dyno
            else:
                worker.thaw()
        time.sleep(0.012 if done < strikes else 0.003)  # slower while striking: a new worker needs ~1.5 s to start
    return sent, last, done
