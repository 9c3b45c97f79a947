"""Fault 9: retention: after many successful and failed jobs, nothing in Redis grows without bound."""

from __future__ import annotations

import fnmatch

from redis import Redis
from rq import Queue
from rq.job import Job

from config import contract
from config.rq import QUEUE, QUEUES, SERIALIZER, presets
from tests.conftest import make_settings, run_worker
from tests.faults.conftest import ACCOUNT, comment_delivery, signature
from tests.support.procs import free_port
from webhook import create_app
from workers import context, ingest

DELIVERIES = 200
WAVES = 10
BOUNDED_BYTES = 16 * 1024  # what the allow-listed structures may hold here (stats, due media, the empty inbox)
FAILING_JOBS = 20
MAX_TTL = 30 * 86400  # the longest TTL igrelay sets (an account's last delivery, for the watchdog)
# Keys without a TTL, each bounded by something other than traffic:
ALLOW = {
    contract.INBOX: "stream of deliveries not yet ingested: entries are deleted when acknowledged",
    contract.FETCH_DUE: "one member per media with a pending fetch (bounded by the accounts' media)",
    contract.FETCH_TRIGGER: "the same members as igrelay:fetch:due",
    contract.STATS: "one counter per metric and label set (labels: outcomes, fields, sinks, accounts)",
    "igrelay:account:*:needs_reauth": "one flag per configured account whose token failed",
    "igrelay:token:*": "one refreshed token per configured account",
    "igrelay:due:*": "one member per account and periodic task, the entry counter and the synced account list",
    contract.RECONNECT_NEEDED: "the accounts needing reconnection (bounded by the accounts)",
    "igrelay:sink:disabled:*": "one flag per configured sink that answered 410",
    "rq:queues": "the set of queue names",
    "rq:queue:*": "jobs waiting to run",
    "rq:scheduled:*": "jobs waiting for their time (retries, the next tick)",
    "rq:wip:*": "jobs running now",
    "rq:failed:*": "ids of dead-lettered jobs; each job key expires after failure_ttl and RQ prunes the id",
    "rq:finished:*": "ids of finished jobs; each job key expires after result_ttl and RQ prunes the id",
    "rq:workers": "live workers",
    "rq:workers:*": "live workers per queue",
    "rq:job:*": "only jobs still to run (queued or scheduled): asserted below",
}


def _key_bytes(redis: Redis) -> int:
    """Bytes held by every key of the db (MEMORY USAGE, exact). The server's used_memory is not used:
    it also counts connections and allocator state, and stays ~1.4 MB above its start even after FLUSHDB."""
    return sum(redis.memory_usage(key, samples=0) or 0 for key in redis.scan_iter(count=1000))


def _release_scheduled(redis: Redis) -> int:
    """Enqueue every scheduled job but the next tick now, as the scheduler would when due."""
    count = 0
    for name in QUEUES:
        queue = Queue(name, connection=redis, serializer=SERIALIZER)
        for job_id in queue.scheduled_job_registry.get_job_ids():
            if not job_id.startswith("tick-"):
                job = Job.fetch(job_id, connection=redis, serializer=SERIALIZER)
                queue.scheduled_job_registry.remove(job)
                queue.enqueue_job(job)
                count += 1
    return count


def test_every_key_expires_or_is_a_bounded_structure(procs, tmp_path):
    """After 200 deliveries (400 records to a working and a broken SQLite sink, retried to their dead letter)
    and 20 Graph jobs failing through all retries, on a private redis-server: every key has a TTL in
    (0, 30 d] except the 18 allow-listed bounded structures; the inbox's consumer group keeps <= 2
    consumers; with the TTL'd keys gone, the keys hold <= 10 % of their peak memory and <= baseline + 16 KB."""
    port = free_port()
    procs.redis_server(port, tmp_path / "redis")
    redis = Redis.from_url(f"redis://127.0.0.1:{port}/0")
    settings = make_settings(
        tmp_path,
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        IGRELAY_SINKS=f"sqlite:///{tmp_path}/records.sqlite3,sqlite:////proc/igrelay-nowhere/records.sqlite3",
        GRAPH_API_URL=f"http://127.0.0.1:{free_port()}",
        IG_ACCESS_TOKENS=f"{ACCOUNT}=token-{port}",
        IGRELAY_POLL_INTERVAL="0",
        LOG_LEVEL="WARNING",
    )
    try:
        context.install(context.Context(settings, redis))
        ingest.ensure_group(redis)
        baseline = _key_bytes(redis)
        client = create_app(settings, redis=redis).test_client()
        for wave in range(WAVES):  # a worker run after each wave: a new drain job, a new stream consumer
            for i in range(DELIVERIES // WAVES):
                body, _ids = comment_delivery(2, media_id=f"1810000000000000{i % 5}")
                assert client.post("/webhook", data=body, headers=signature(body)).status_code == 200
            if wave < WAVES - 1:
                run_worker(settings)
        queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
        for _ in range(FAILING_JOBS):  # Graph refuses connections: every attempt fails
            queue.enqueue("workers.jobs.account_insights", args=(ACCOUNT,), **presets()["periodic"])
        for _round in range(15):
            run_worker(settings)
            if not _release_scheduled(redis):
                break
        failed = sum(redis.zcard(f"rq:failed:{q}") for q in QUEUES)
        assert failed >= FAILING_JOBS + 1  # the Graph jobs and the broken sink's deliveries, dead-lettered

        unbounded, too_long = [], []
        for key in redis.scan_iter(count=1000):
            name, ttl = key.decode(), redis.ttl(key)
            if ttl == -1 and not any(fnmatch.fnmatchcase(name, pattern) for pattern in ALLOW):
                unbounded.append(name)
            if ttl > MAX_TTL:
                too_long.append((name, ttl))
            if ttl == -1 and name.startswith("rq:job:"):
                status = redis.hget(key, "status")
                assert status in (b"queued", b"scheduled"), (name, status)  # work still to do, e.g. the next tick
        assert unbounded == [] and too_long == []
        assert len(ALLOW) == 18
        consumers = redis.xinfo_consumers(contract.INBOX, contract.INBOX_GROUP)
        assert len(consumers) <= 2, f"{len(consumers)} consumers left in the inbox's group"

        peak = _key_bytes(redis)
        for key in list(redis.scan_iter(count=1000)):  # what expiry will do
            if redis.ttl(key) > 0:
                redis.delete(key)
        left = _key_bytes(redis)
        print(f"key memory: baseline {baseline} B, peak {peak} B, after expiry {left} B")
        assert left <= baseline + BOUNDED_BYTES and left <= peak * 0.10
    finally:
        context.install(None)
        redis.close()
