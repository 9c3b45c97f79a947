"""Helpers for the fault-injection suite: real ``igrelay worker`` and gunicorn processes, a private
``redis-server``, signed deliveries, and readers for the SQLite sink and RQ's registries.

Every process is started in its own session (``start_new_session=True``); a test kills every process of
it (parent, scheduler, and the work horse, which RQ moves to a group of its own) the way a PaaS kills a
dyno, and the ``procs`` fixture kills every tree it started in teardown. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from redis import Redis

from config import contract
from config.rq import QUEUES
from igrelay import payloads
from igrelay.procs import free_port
from tests.conftest import SECRET, TEST_REDIS_URL, VERIFY_TOKEN
from tests.support.procs import descendants, signal_all

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ACCOUNT = "17841400000000001"


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.2) -> float | None:
    """Poll ``predicate`` until it is truthy; seconds it took, or ``None`` after ``timeout``."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(interval)


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for igrelay processes: the tests' Redis db, a SQLite sink, Graph on a closed
    loopback port (nothing may leave the machine), no polling, a debounce longer than any test."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("META_", "IGRELAY_", "REDIS_URL", "GRAPH_", "IG_", "LOG_", "PORT", "WEB_"))
    }
    env.update(
        META_APP_SECRET=SECRET,
        META_VERIFY_TOKEN=VERIFY_TOKEN,
        REDIS_URL=TEST_REDIS_URL,
        IGRELAY_SINKS=f"sqlite:///{tmp_path}/records.sqlite3",
        GRAPH_API_URL=f"http://127.0.0.1:{free_port()}",
        IGRELAY_POLL_INTERVAL="0",
        IGRELAY_DEBOUNCE_SECONDS="3600",
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        PATH=f"{BIN}:{os.environ.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Proc:
    """A process started in its own session, its stdout+stderr in ``log``.

    "Every process of it" means the process, its group and every descendant: RQ's work horse calls
    ``setpgrp`` and leaves the worker's process group, so a group signal alone would spare it.
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self.name, self.log = name, log
        self._out = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pid = self.popen.pid
        self.seen: set[int] = {self.pid}  # every process of the tree seen so far (horses outlive a killed parent)

    def tree(self) -> list[int]:
        """The process and its descendants now, remembered in ``seen``."""
        if self.popen.poll() is None:
            self.seen |= {self.pid, *descendants(self.pid)}
        return sorted(self.seen)

    def alive(self) -> bool:
        return any(_alive(pid) for pid in self.tree())

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the process group only (e.g. SIGSTOP/SIGCONT to a redis-server)."""
        signal_all([self.pid], sig)

    def freeze(self) -> None:
        """SIGSTOP every process of it (to look at its state in Redis without it moving on)."""
        signal_all([self.pid], signal.SIGSTOP)
        signal_all(self.tree(), signal.SIGSTOP)

    def thaw(self) -> None:
        signal_all(self.tree(), signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL every process of it at once, as a PaaS kills a dyno: stopped first so it cannot fork."""
        signal_all([self.pid], signal.SIGSTOP)
        signal_all(self.tree(), signal.SIGKILL)
        self.popen.wait(timeout=10)
        wait_until(lambda: not any(_alive(pid) for pid in self.seen), 10, 0.02)

    def restart_heroku_style(self, grace: float = 30.0) -> float:
        """SIGTERM to every process of it, SIGKILL to survivors after ``grace``; seconds until all were gone."""
        start = time.monotonic()
        signal_all(self.tree(), signal.SIGTERM)
        signal_all(self.tree(), signal.SIGCONT)  # in case it was frozen: it now handles the SIGTERM where it stood
        if wait_until(lambda: not self.alive(), grace, 0.05) is None:
            signal_all(self.tree(), signal.SIGKILL)
        self.popen.wait(timeout=10)
        return time.monotonic() - start

    def stop(self) -> None:
        if self.alive() or self.popen.poll() is None:
            self.kill()
        self._out.close()

    def text(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")


class Procs:
    """Starts igrelay workers, gunicorn and redis-server; ``close()`` kills them all."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.all: list[Proc] = []
        self.count = 0

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> Proc:
        self.count += 1
        proc = Proc(name, argv, env, self.tmp_path / f"{self.count:02d}-{name}.log", cwd or self.tmp_path)
        self.all.append(proc)
        return proc

    def worker(self, env: dict[str, str], name: str | None = None, burst: bool = False) -> Proc:
        """``igrelay worker`` (the Procfile's worker: HerokuWorker with the scheduler)."""
        name = name or f"faults-{os.getpid()}-{self.count + 1}"
        argv = [str(BIN / "igrelay"), "worker", "--name", name] + (["--burst"] if burst else [])
        proc = self.start(name, argv, env)
        proc.worker_name = name  # type: ignore[attr-defined]
        return proc

    def run_burst(self, env: dict[str, str], timeout: float = 120) -> Proc:
        """``igrelay worker --burst`` to completion."""
        proc = self.worker(env, burst=True)
        proc.popen.wait(timeout=timeout)
        return proc

    def web(self, env: dict[str, str]) -> tuple[Proc, str]:
        """The Procfile's web line (gunicorn), bound to 127.0.0.1 only; waits for /healthz."""
        port = free_port()
        env = {**env, "PORT": str(port), "WEB_CONCURRENCY": env.get("WEB_CONCURRENCY", "2")}
        argv = procfile_command("web") + ["--bind", f"127.0.0.1:{port}"]
        argv[0] = str(BIN / argv[0])
        proc = self.start("web", argv, env, cwd=ROOT)
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return requests.get(url + "/healthz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        if wait_until(up, 20, 0.1) is None:
            raise AssertionError("gunicorn did not start:\n" + proc.text()[-3000:])
        return proc, url

    def redis_server(self, port: int, data_dir: Path, appendonly: bool = False) -> Proc:
        """A private redis-server on 127.0.0.1:``port`` (never the machine's shared one)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "yes", "--appendfsync", "always"] if appendonly else ["--appendonly", "no"]
        argv += ["--dir", str(data_dir), "--protected-mode", "yes"]
        proc = self.start(f"redis-{port}", argv, dict(os.environ))

        def ping() -> bool:
            client = Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
            try:
                return bool(client.ping())
            except Exception:
                return False
            finally:
                client.close()

        if wait_until(ping, 10, 0.05) is None:
            raise AssertionError("redis-server did not start:\n" + proc.text()[-2000:])
        return proc

    def close(self) -> None:
        for proc in reversed(self.all):
            if proc.popen.returncode is None and proc.name.startswith("redis-"):
                proc.signal_group(signal.SIGCONT)  # let a stopped (hung) Redis go
            proc.stop()


@pytest.fixture
def procs(tmp_path: Path, redis: Redis) -> Iterator[Procs]:
    """Process starter; depends on ``redis`` so every process is dead before the db is emptied."""
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.close()


def procfile_command(name: str) -> list[str]:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(name + ":"):
            return shlex.split(line.split(":", 1)[1])
    raise AssertionError(f"no {name} process in Procfile")


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
    procs,
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
