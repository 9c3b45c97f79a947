"""Delivery semantics with a real RQ worker: each (record, sink) pair delivered once, whatever fails."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import time
from typing import ClassVar

import pytest
from conftest import make_settings, run_worker
from rq import Queue
from rq.registry import StartedJobRegistry

from config import contract, rq, stats
from config.rq import QUEUE, SERIALIZER
from workers import delivery, failed
from workers import records as R
from workers.context import Context
from workers.sinks import REGISTRY, SinkError, sink_name
from workers.sinks.sqlite import SqliteSink


def recs(n: int) -> list[dict]:
    return [R.account_insights("17841", f"2026-11-{i:02d}", {"reach": i}, {}, "schedule") for i in range(1, n + 1)]


def configure(tmp_path, receiver, span: str = "1d", extra: str = ""):  # type: ignore[no-untyped-def]
    """Settings with a SQLite sink and an HTTP sink (named ``hook``) on the local receiver."""
    config = tmp_path / "igrelay.toml"
    config.write_text(f'[sinks.hook]\nurl = "{receiver.url}/in"\nallow_private = true\nretry_span = "{span}"\n{extra}')
    db = tmp_path / "out.sqlite3"
    return make_settings(tmp_path, IGRELAY_SINKS=f"sqlite:///{db},{receiver.url}/in", IGRELAY_CONFIG=str(config)), db


def rows(db) -> int:  # type: ignore[no-untyped-def]
    with sqlite3.connect(db) as conn:
        count = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    conn.close()
    return count


def drain(settings, release, rounds: int = 15) -> None:  # type: ignore[no-untyped-def]
    """Run the worker, then let every scheduled retry fall due, until nothing is left."""
    for _ in range(rounds):
        run_worker(settings)
        if not release():
            return


def counter(redis, sink: str, outcome: str) -> int:  # type: ignore[no-untyped-def]
    raw = redis.hget(contract.STATS, stats.field(delivery.STAT, sink=sink, outcome=outcome))
    return int(raw or 0)


def test_emit_in_a_pipeline_names_sinks_not_urls(tmp_path, redis, receiver) -> None:
    settings, db = configure(tmp_path, receiver)
    pipe = redis.pipeline(transaction=True)
    pipe.multi()
    names = ["hook", sink_name(f"sqlite:///{db}")]
    emitted = delivery.emit(redis, settings, recs(501), pipeline=pipe)
    assert sorted(emitted.names) == sorted(names)
    assert Queue(QUEUE, connection=redis).count == 0 and not redis.exists(*map(contract.outbox, names))
    assert emitted.kick(redis, pipe.execute()) == 2  # one job a sink
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    jobs = queue.get_jobs()
    assert sorted(j.args[0] for j in jobs) == sorted(names)
    for job in jobs:
        assert receiver.url not in json.dumps(job.args) and str(db) not in job.description
        assert job.retries_left == len(job.retry_intervals) and job.failure_ttl == 14 * 86400
    for name in names:  # the records wait in each sink's outbox, in chunks of 500
        chunks = redis.lrange(contract.outbox(name), 0, -1)
        assert [c.split(b":", 1)[0] for c in chunks] == [b"500", b"1"]
        assert receiver.url.encode() not in b"".join(chunks)


def test_metrics_show_each_sinks_outbox_until_its_job_delivers(tmp_path, redis, receiver) -> None:
    from webhook import create_app

    settings, db = configure(tmp_path, receiver)
    scrape = create_app(settings, redis=redis).test_client().get
    names = ["hook", sink_name(f"sqlite:///{db}")]

    def outboxes() -> dict[str, float]:
        lines = scrape("/metrics").data.decode().splitlines()
        found = [line.split(" ") for line in lines if line.startswith("igrelay_sink_outbox_chunks{")]
        return {line[0].split('"')[1]: float(line[1]) for line in found}

    assert outboxes() == dict.fromkeys(names, 0.0)
    delivery.emit(redis, settings, recs(501))
    assert outboxes() == dict.fromkeys(names, 2.0)  # 500 records, then 1
    run_worker(settings)
    assert outboxes() == dict.fromkeys(names, 0.0) and rows(db) == 501


def test_one_job_a_sink_until_it_claims_however_many_emits(tmp_path, redis, receiver) -> None:
    """Emits while a sink's job waits in the queue add to what it will take instead of enqueuing more jobs
    (each job costs RQ's bookkeeping); once the job has claimed, the next emit kicks a job of its own."""
    settings, db = configure(tmp_path, receiver)
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    for i in range(5):
        assert len(delivery.emit(redis, settings, distinct(i, 1)).names) == 2
    assert queue.count == 2  # one a sink
    run_worker(settings)
    assert rows(db) == 5 and len(receiver.ok_bodies()) == 5
    assert list(redis.scan_iter("igrelay:outbox*")) == []  # the flags went with the claims
    delivery.emit(redis, settings, distinct(5, 1))
    assert queue.count == 2
    run_worker(settings)
    assert rows(db) == 6 and len(receiver.ok_bodies()) == 6


def test_records_whose_kick_was_lost_are_kicked_by_the_tick(tmp_path, redis, receiver) -> None:
    """A process killed between storing records and enqueuing their job leaves them in the outbox with a
    pending flag that stands for no job; once the flag has expired, the tick's ``resume`` gives them one."""
    settings, db = configure(tmp_path, receiver)
    pipe = redis.pipeline(transaction=True)
    names = delivery.emit(redis, settings, recs(3), pipeline=pipe).names
    pipe.execute()  # and the process dies: both flags set, no job enqueued
    redis.delete(contract.outbox_pending(sink_name(f"sqlite:///{db}")))  # this one's TTL passed
    ctx = Context(settings, redis)
    assert delivery.resume(ctx) == 1  # the SQLite sink; the hook's flag still stands for a job
    redis.delete(contract.outbox_pending("hook"))  # its TTL passed
    assert delivery.resume(ctx) == 1
    assert delivery.resume(ctx) == 0  # both pending now
    run_worker(settings)
    assert sorted(names) == sorted(["hook", sink_name(f"sqlite:///{db}")])
    assert rows(db) == 3 and len(receiver.ok_bodies()) == 3
    assert list(redis.scan_iter("igrelay:outbox*")) == [] and delivery.resume(ctx) == 0


def test_retry_schedule_is_exponential_jittered_and_spans_the_day() -> None:
    a, b = rq.retry_schedule(86400), rq.retry_schedule(86400)
    assert a.intervals != b.intervals  # jitter
    assert 0.8 * 86400 <= sum(a.intervals) <= 1.2 * 86400
    assert a.intervals[0] < a.intervals[1] < a.intervals[2] < a.intervals[3]
    assert 8 <= a.intervals[0] <= 12 and max(a.intervals) <= 6 * 3600 * 1.2
    assert sum(rq.retry_schedule(60).intervals) <= 80


def test_sink_down_then_back_delivers_everything_once(tmp_path, redis, receiver, release_scheduled) -> None:
    settings, db = configure(tmp_path, receiver, extra="concurrency = 1\n")
    receiver.script = [(500, {}), (500, {}), (200, {}), (503, {}), (500, {})]
    records = recs(3)
    delivery.emit(redis, settings, records)
    run_worker(settings)
    assert rows(db) == 3  # the healthy sink is not held back by the failing one
    drain(settings, release_scheduled)
    delivered = sorted(json.loads(b)["id"] for b in receiver.ok_bodies())
    assert delivered == sorted(r["id"] for r in records)  # each exactly once
    assert rows(db) == 3 and failed.list_failed(redis) == []
    assert counter(redis, "hook", "delivered") == 3


def test_permanent_failure_is_dead_lettered_and_replayable(tmp_path, redis, receiver, release_scheduled) -> None:
    settings, db = configure(tmp_path, receiver, span="40s")
    receiver.script = [(500, {})] * 100
    delivery.emit(redis, settings, recs(2))
    drain(settings, release_scheduled)
    assert rows(db) == 2
    [dead] = failed.list_failed(redis)
    assert dead["sink"] == "hook" and dead["records"] == 2 and dead["queue"] == QUEUE
    assert dead["attempts"] >= 3 and dead["exception"] == "SinkError" and "500" in dead["message"]
    assert receiver.url not in json.dumps(dead) and counter(redis, "hook", "dead_letter") == 2
    assert failed.list_failed(redis, sink="other") == []
    receiver.script = []  # the receiver is fixed
    assert failed.replay(redis, sink="hook", settings=settings) == 1
    drain(settings, release_scheduled)
    assert failed.list_failed(redis) == [] and len(receiver.ok_bodies()) == 2


def test_410_disables_the_sink_until_replayed(tmp_path, redis, receiver, release_scheduled) -> None:
    settings, _db = configure(tmp_path, receiver)
    receiver.script = [(410, {})]
    delivery.emit(redis, settings, recs(1))
    run_worker(settings)
    delivery.emit(redis, settings, recs(2)[1:])
    run_worker(settings)
    assert len(receiver.requests) == 1  # the disabled sink is not contacted again
    dead = failed.list_failed(redis, sink="hook")
    assert len(dead) == 2 and all(d["attempts"] == 1 for d in dead) and release_scheduled() == 0
    assert failed.replay(redis, sink="hook") == 2
    run_worker(settings)
    assert len(receiver.ok_bodies()) == 2


def test_retry_after_reschedules_the_rest_without_sleeping(tmp_path, redis, receiver, release_scheduled) -> None:
    settings, _db = configure(tmp_path, receiver, extra="concurrency = 1\n")
    receiver.script = [(200, {}), (429, {"Retry-After": "120"})]
    records = recs(2)
    delivery.emit(redis, settings, records)
    start = time.monotonic()
    run_worker(settings)
    assert time.monotonic() - start < 10
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    [job_id] = [j for j in queue.scheduled_job_registry.get_job_ids() if not j.startswith("tick-")]
    due = queue.scheduled_job_registry.get_scheduled_time(job_id).timestamp()
    assert 100 < due - time.time() <= 121
    job = queue.fetch_job(job_id)
    assert [r["id"] for r in job.args[1]] == [records[1]["id"]]
    release_scheduled()
    run_worker(settings)
    assert sorted(json.loads(b)["id"] for b in receiver.ok_bodies()) == sorted(r["id"] for r in records)


class CountingSqliteSink(SqliteSink):
    """SQLite that notes the size of every send."""

    sends: ClassVar[list[int]] = []

    def send(self, records) -> None:  # type: ignore[no-untyped-def]
        CountingSqliteSink.sends.append(len(records))
        super().send(records)


class SmallFlushSink(CountingSqliteSink):
    flush_records = 500


def distinct(start: int, n: int) -> list[dict]:
    return [R.account_insights("17841", "2026-11-01", {"reach": i}, {}, "schedule") for i in range(start, start + n)]


@pytest.mark.parametrize(("scheme", "sends"), [("countsqlite", [5000, 1000]), ("smallflush", [500] * 12)])
def test_a_backlog_goes_out_in_sends_of_the_sinks_size(tmp_path, redis, monkeypatch, scheme, sends) -> None:
    """Twelve drains' worth of records waiting: the SQL sink stores them in two transactions, a sink that
    sends record by record keeps to its own size; every record once, nothing left behind in Redis."""
    monkeypatch.setitem(REGISTRY, "countsqlite", f"{__name__}:CountingSqliteSink")
    monkeypatch.setitem(REGISTRY, "smallflush", f"{__name__}:SmallFlushSink")
    monkeypatch.setattr(CountingSqliteSink, "sends", [])
    db = tmp_path / "out.sqlite3"
    settings = make_settings(tmp_path, IGRELAY_SINKS=f"{scheme}:///{db}")
    for i in range(12):
        delivery.emit(redis, settings, distinct(i * 500, 500))
    run_worker(settings)
    assert CountingSqliteSink.sends == sends
    assert rows(db) == 6000 and failed.list_failed(redis) == []
    assert list(redis.scan_iter("igrelay:outbox*")) == []


def test_records_left_in_the_outbox_get_a_job_of_their_own(tmp_path, redis, monkeypatch) -> None:
    """One emit of 1,200 records is one job; a sink that takes 500 a send leaves some behind, and the job
    kicks the next, so nothing waits for another emit."""
    monkeypatch.setitem(REGISTRY, "smallflush", f"{__name__}:SmallFlushSink")
    monkeypatch.setattr(CountingSqliteSink, "sends", [])
    db = tmp_path / "out.sqlite3"
    settings = make_settings(tmp_path, IGRELAY_SINKS=f"smallflush:///{db}")
    delivery.emit(redis, settings, distinct(0, 1200))
    assert Queue(QUEUE, connection=redis).count == 1
    run_worker(settings)
    assert CountingSqliteSink.sends == [500, 500, 200] and rows(db) == 1200
    assert list(redis.scan_iter("igrelay:outbox*")) == []


class FailingOnceSink(SmallFlushSink):
    """Takes 500 records a send; the first send fails."""

    def send(self, records) -> None:  # type: ignore[no-untyped-def]
        if not CountingSqliteSink.sends:
            CountingSqliteSink.sends.append(-len(records))
            raise SinkError("down for a moment")
        super().send(records)


def test_records_behind_a_failed_claim_are_not_held_up_by_its_retry(
    tmp_path, redis, monkeypatch, release_scheduled
) -> None:
    monkeypatch.setitem(REGISTRY, "failonce", f"{__name__}:FailingOnceSink")
    monkeypatch.setattr(CountingSqliteSink, "sends", [])
    db = tmp_path / "out.sqlite3"
    settings = make_settings(tmp_path, IGRELAY_SINKS=f"failonce:///{db}")
    delivery.emit(redis, settings, distinct(0, 1200))
    run_worker(settings)
    assert CountingSqliteSink.sends == [-500, 500, 200] and rows(db) == 700  # the failed 500 wait for their retry
    assert release_scheduled() == 1
    run_worker(settings)
    assert CountingSqliteSink.sends[3:] == [500] and rows(db) == 1200
    assert list(redis.scan_iter("igrelay:outbox*")) == []


def test_a_failed_job_sends_its_own_claim_again_not_the_newer_records(
    tmp_path, redis, receiver, release_scheduled
) -> None:
    """A job whose send failed keeps what it took; records emitted meanwhile go to the next job, and the
    retry sends exactly its claim."""
    settings, _db = configure(tmp_path, receiver, extra="concurrency = 1\n")
    receiver.script = [(500, {})]
    first, later = distinct(0, 1), distinct(1, 2)
    delivery.emit(redis, settings, first)
    run_worker(settings)  # the hook fails: its job waits for its retry, holding ``first``
    [claim] = [k for k in redis.scan_iter("igrelay:outbox-claim:*")]
    assert 0 < redis.ttl(claim) and json.loads(redis.lrange(claim, 0, -1)[0].split(b":", 1)[1])["id"] == first[0]["id"]
    delivery.emit(redis, settings, later)
    run_worker(settings)
    assert sorted(json.loads(b)["id"] for b in receiver.ok_bodies()) == sorted(r["id"] for r in later)
    drain(settings, release_scheduled)
    bodies = [json.loads(b)["id"] for b in receiver.ok_bodies()]
    assert sorted(bodies) == sorted(r["id"] for r in first + later)  # each once
    assert list(redis.scan_iter("igrelay:outbox*")) == []


class SlowSqliteSink(SqliteSink):
    """SQLite, but the first send hangs after committing, so the test can kill the worker there."""

    def send(self, records) -> None:  # type: ignore[no-untyped-def]
        super().send(records)
        flag = os.path.join(os.path.dirname(self.path), "horse.pid")
        if not os.path.exists(flag):
            with open(flag, "w") as fh:
                fh.write(str(os.getpid()))
            time.sleep(60)


@pytest.mark.faults
def test_worker_killed_mid_delivery_stores_once(tmp_path, redis, monkeypatch, release_scheduled) -> None:
    monkeypatch.setitem(REGISTRY, "slowsqlite", f"{__name__}:SlowSqliteSink")
    db = tmp_path / "slow.sqlite3"
    settings = make_settings(tmp_path, IGRELAY_SINKS=f"slowsqlite:///{db}")
    delivery.emit(redis, settings, recs(20))
    worker = multiprocessing.get_context("fork").Process(target=run_worker, args=(settings,))
    worker.start()
    flag = tmp_path / "horse.pid"
    deadline = time.monotonic() + 30
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)
    os.kill(int(flag.read_text()), signal.SIGKILL)  # the work horse, mid-job, after its commit
    os.kill(worker.pid, signal.SIGKILL)  # and the worker: the whole dyno is gone
    worker.join(10)
    assert rows(db) == 20
    # Another worker's maintenance finds the abandoned job once its heartbeat expires.
    StartedJobRegistry(QUEUE, connection=redis, serializer=SERIALIZER).cleanup(time.time() + 3600)
    assert release_scheduled() == 1
    run_worker(settings)
    assert rows(db) == 20 and failed.list_failed(redis) == []


def _values(redis) -> list[bytes]:  # type: ignore[no-untyped-def]
    """Every value in the test database, plus its zlib / base64+zlib decoding where that works."""
    import base64
    import zlib

    out: list[bytes] = []
    for key in redis.scan_iter():
        kind = redis.type(key)
        if kind == b"string":
            vals = [redis.get(key)]
        elif kind == b"hash":
            vals = [v for kv in redis.hgetall(key).items() for v in kv]
        elif kind == b"list":
            vals = redis.lrange(key, 0, -1)
        elif kind == b"set":
            vals = list(redis.smembers(key))
        elif kind == b"zset":
            vals = redis.zrange(key, 0, -1)
        else:
            vals = [v for _id, fields in redis.xrange(key) for kv in fields.items() for v in kv]
        for v in [key, *vals]:
            out.append(v)
            for decode in (zlib.decompress, lambda b: zlib.decompress(base64.b64decode(b))):
                try:
                    out.append(decode(v))
                except Exception:  # noqa: BLE001, S112 - not encoded that way
                    continue
    return out


def test_sink_urls_never_reach_redis(tmp_path, redis, receiver, release_scheduled) -> None:
    canary = "tok-LEAKCANARY-4242"
    config = tmp_path / "igrelay.toml"
    url = f"{receiver.url}/in/{canary}?key={canary}"
    config.write_text(f'[sinks.hook]\nurl = "{url}"\nallow_private = true\nretry_span = "20s"\n')
    settings = make_settings(tmp_path, IGRELAY_SINKS=url, IGRELAY_CONFIG=str(config))
    receiver.script = [(500, {})] * 50
    delivery.emit(redis, settings, recs(2))
    drain(settings, release_scheduled)
    assert failed.list_failed(redis, sink="hook") and receiver.requests[0]["path"].endswith(canary)
    assert not [v for v in _values(redis) if canary.encode() in v]
