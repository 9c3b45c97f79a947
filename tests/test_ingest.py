"""Deliveries through the real app, a real Redis and a real RQ worker, into records."""

import json
from pathlib import Path

from config import contract
from igrelay import payloads
from tests.conftest import SECRET, run_worker
from workers import failed, ingest, schedule

SAMPLES = Path(__file__).parent / "samples" / "meta"


def post(client, body):
    answer = client.post("/webhook", data=body, headers={"X-Hub-Signature-256": payloads.sign(body, SECRET)})
    assert answer.status_code == 200
    return answer


def records(tmp_path):
    path = tmp_path / "records.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_every_sample_becomes_records_once(client, settings, redis, tmp_path):
    for sample in sorted(SAMPLES.glob("*.json")):
        post(client, sample.read_bytes())
        post(client, sample.read_bytes())  # Meta retries: the same delivery again
    run_worker(settings)
    out = records(tmp_path)
    ids = [r["id"] for r in out]
    assert len(ids) == len(set(ids))
    kinds = {(r["kind"], r["trigger"]) for r in out}
    assert ("story_insights", "story_insights") in kinds
    assert {("webhook_event", f) for f in ("comments", "live_comments", "mentions", "messages")} <= kinds
    assert not any(r["trigger"] == "some_future_field" for r in out)
    # 10 samples: comment ids 1..8 (8 comments/live/missing-changes/array/unknown), 1 mention, 3 messaging, 1 story
    assert len(out) == 13
    assert redis.xlen(contract.INBOX) == 0
    metrics = client.get("/metrics").data.decode()
    assert 'igrelay_changes_total{field="comments",outcome="duplicate"}' in metrics
    assert 'igrelay_changes_total{field="unknown",outcome="ignored"} 4.0' in metrics


def test_rebatched_retry_is_processed_once(client, settings, tmp_path):
    first = payloads.delivery("comments", "17841400000000001", "18111", 3)
    post(client, payloads.encode(first))
    run_worker(settings)
    rebatched = payloads.delivery("comments", "17841400000000001", "18111", 1)
    rebatched["entry"][0]["changes"] += first["entry"][0]["changes"][1:]
    rebatched["entry"][0]["time"] += 99  # a retry may carry another send time
    post(client, payloads.encode(rebatched))
    run_worker(settings)
    assert len(records(tmp_path)) == 4


def test_comments_request_one_debounced_fetch_per_media(client, settings, redis):
    for media in ("18100000000000001", "18100000000000002"):
        for _ in range(5):
            post(client, payloads.encode(payloads.delivery("comments", "17841400000000001", media, 10)))
    post(client, payloads.encode(payloads.delivery("mentions", "17841400000000001", "18100000000000003", 1)))
    run_worker(settings)
    due = dict(redis.zrange(contract.FETCH_DUE, 0, -1, withscores=True))
    # mentions: someone else's media
    assert set(due) == {b"17841400000000001:18100000000000001", b"17841400000000001:18100000000000002"}
    assert b"igrelay_fetch_coalesced_total 98.0" in client.get("/metrics").data


def test_fetch_request_only_moves_earlier(redis):
    assert schedule.request_fetch(redis, "a", "m", "schedule", 5000.0) == 1
    assert schedule.request_fetch(redis, "a", "m", "comments", 100.0) == 1
    assert schedule.request_fetch(redis, "a", "m", "comments", 130.0) == 0
    assert redis.zscore(contract.FETCH_DUE, "a:m") == 100.0
    assert redis.hget(contract.FETCH_TRIGGER, "a:m") == b"comments"


def test_entries_of_a_killed_consumer_are_claimed_again(client, settings, redis, tmp_path, monkeypatch):
    post(client, payloads.encode(payloads.delivery("comments", "17841400000000001", "18111", 2)))
    ingest.ensure_group(redis)
    redis.xreadgroup(contract.INBOX_GROUP, "dead-worker", {contract.INBOX: ">"}, count=10)  # read, never acked
    ingest.drain(redis, settings, consumer="live-worker")
    run_worker(settings)
    assert records(tmp_path) == []  # not idle long enough yet: still the dead worker's
    monkeypatch.setattr(ingest, "CLAIM_IDLE_MS", 0)
    ingest.drain(redis, settings, consumer="live-worker")
    run_worker(settings)
    assert len(records(tmp_path)) == 2
    assert redis.xpending(contract.INBOX, contract.INBOX_GROUP)["pending"] == 0


def test_a_requeued_drain_takes_back_its_own_entries_at_once(client, settings, redis, tmp_path):
    """A drain cut short by a restart and requeued (same job id, same consumer) resumes its read-but-unacked
    entries without the 60 s wait that entries of a vanished consumer need."""
    post(client, payloads.encode(payloads.delivery("comments", "17841400000000001", "18111", 2)))
    ingest.ensure_group(redis)
    redis.xreadgroup(contract.INBOX_GROUP, "job-42", {contract.INBOX: ">"}, count=10)  # read, then cut short
    ingest.drain(redis, settings, consumer="job-7")
    run_worker(settings)
    assert records(tmp_path) == []  # another job may not take them yet
    ingest.drain(redis, settings, consumer="job-42")  # the same job, run again
    run_worker(settings)
    assert len(records(tmp_path)) == 2
    assert redis.xpending(contract.INBOX, contract.INBOX_GROUP)["pending"] == 0
    assert not redis.xinfo_consumers(contract.INBOX, contract.INBOX_GROUP)  # both retired


def test_crash_after_dedupe_does_not_lose_changes(client, settings, redis, tmp_path, monkeypatch):
    post(client, payloads.encode(payloads.delivery("comments", "17841400000000001", "18111", 3)))
    ingest.ensure_group(redis)
    entries = redis.xreadgroup(contract.INBOX_GROUP, "w1", {contract.INBOX: ">"}, count=10)[0][1]
    parsed = [ingest.parse_entry(e.decode(), d, "2026-01-01T00:00:00Z") for e, d in entries]
    assert len(ingest._dedupe(redis, parsed)) == 3  # marked seen, then the worker dies before emitting
    monkeypatch.setattr(ingest, "CLAIM_IDLE_MS", 0)
    ingest.drain(redis, settings, consumer="w2")
    run_worker(settings)
    assert len(records(tmp_path)) == 3


def test_thousand_change_delivery(client, settings, tmp_path):
    post(client, payloads.encode(payloads.delivery("comments", "17841400000000001", "18111", 1000)))
    run_worker(settings)
    assert len(records(tmp_path)) == 1000


def test_every_job_has_explicit_retry_and_ttls(client, settings, redis):
    post(client, payloads.encode(payloads.delivery("comments", "17841400000000001", "18111", 3)))
    ingest.drain(redis, settings, consumer="w")
    jobs = [k for k in redis.scan_iter("rq:job:*") if redis.type(k) == b"hash"]
    assert jobs
    for key in jobs:
        job = redis.hgetall(key)
        assert int(job[b"retries_left"]) >= 2, key
        assert b"failure_ttl" in job and b"result_ttl" in job and b"timeout" in job, key
        assert job[b"serializer"] if b"serializer" in job else True
        assert b"17841400000000001" not in job.get(b"description", b"")


ACCOUNT = "17841400000000001"


def comment(comment_id: str, media_id: str = "18100000000000001", account: str = ACCOUNT, when: object = 1796110912):
    """One signed-ready comments delivery; ``when`` is written into the body as is (``NaN``, ``1e20``...)."""
    value = {"id": comment_id, "text": "hi", "media": {"id": media_id, "media_product_type": "FEED"}}
    entry = {"id": account, "time": "@TIME@", "changes": [{"field": "comments", "value": value}]}
    return json.dumps({"object": "instagram", "entry": [entry]}).replace('"@TIME@"', str(when)).encode()


POISON = {
    "time 1e20": comment("17900000000000091", when="1e20"),
    "time NaN": comment("17900000000000092", when="NaN"),
    "time Infinity": comment("17900000000000093", when="Infinity"),
    "time -Infinity": comment("17900000000000094", when="-Infinity"),
    "empty account": comment("17900000000000095", account=""),
    "path as media id": comment("17900000000000096", media_id="../../refresh_access_token"),
    "path as account": comment("17900000000000097", account="../me"),
    "not JSON": b"{",
}


def test_a_poison_entry_never_delays_a_good_one(client, settings, redis, tmp_path):
    """Poison entries between good ones, all in one batch: one drain turns every good one into a record,
    dead-letters the poison ones (listed by ``igrelay failed``) and leaves the inbox empty."""
    good = []
    for n, body in enumerate(POISON.values()):
        good.append(f"1790000000000000{n}")
        post(client, comment(good[-1]))
        redis.xadd(contract.INBOX, {"b": body, "t": "1"})  # as stored by the web (which refuses non-JSON)
    good.append("17900000000000099")
    post(client, comment(good[-1]))
    result = ingest.drain(redis, settings, consumer="w")
    assert result.records == len(good) and result.dead_letters == len(POISON)
    assert redis.xlen(contract.INBOX) == 0 and redis.xpending(contract.INBOX, contract.INBOX_GROUP)["pending"] == 0
    assert redis.zrange(contract.FETCH_DUE, 0, -1) == [f"{ACCOUNT}:18100000000000001".encode()]
    assert not list(redis.scan_iter("igrelay:account::*")) and not list(redis.scan_iter("*../*"))
    run_worker(settings)
    assert sorted(r["event"]["comment_id"] for r in records(tmp_path)) == sorted(good)
    dead = [d for d in failed.list_failed(redis) if d["id"].startswith(failed.DEAD_ENTRY)]
    assert len(dead) == len(POISON) and {d["exception"] for d in dead} == {"RefusedDelivery"}
    reasons = " ".join(d["message"] for d in dead)
    for reason in ("time out of range", "account id is not numeric", "media id is not numeric", "not JSON"):
        assert reason in reasons
    assert 'igrelay_changes_total{field="comments",outcome="invalid"} 7.0' in client.get("/metrics").data.decode()


def test_a_dead_lettered_entry_is_replayed_into_the_inbox(client, settings, redis):
    redis.xadd(contract.INBOX, {"b": POISON["empty account"], "t": "1"})
    ingest.drain(redis, settings, consumer="w")
    [dead] = failed.list_failed(redis)
    assert failed.replay(redis, job_ids=[dead["id"]]) == 1
    assert [data[b"b"] for _eid, data in redis.xrange(contract.INBOX)] == [POISON["empty account"]]
    assert redis.xlen(contract.INBOX_DEAD) == 0 and failed.list_failed(redis) == []
    assert ingest.drain(redis, settings, consumer="w").dead_letters == 1  # still refused: listed again


PUBLISHED = Path(__file__).parent / "samples" / "published"


def canonical(record: dict, keys) -> str:  # type: ignore[no-untyped-def]
    return json.dumps({k: record.get(k) for k in sorted(keys)}, sort_keys=True, ensure_ascii=False)


def test_every_published_webhook_shape_becomes_its_record(client, settings, redis, tmp_path):
    """Meta's published payloads (and a few third parties' captures), each fixture with its source, replayed
    signed through the app and a real worker: each gives its status and exactly its records (compared on the
    fixture's keys: never id or captured_at; a story_insights record's metrics are test_records' business).
    The App Dashboard's Test deliveries (entry id "0") are webhook_event records marked test, every click
    of one included, and schedule or flag nothing."""
    fixtures = [json.loads(p.read_text()) for p in sorted(PUBLISHED.glob("*.json"))]
    assert len(fixtures) == 54
    for fx in fixtures:
        body = json.dumps(fx["body"], ensure_ascii=fx["encoding"] == "escaped").encode()
        answer = client.post("/webhook", data=body, headers={"X-Hub-Signature-256": payloads.sign(body, SECRET)})
        assert answer.status_code == fx["status"], fx["name"]
    run_worker(settings)
    got = records(tmp_path)
    for fx in fixtures:
        for want in fx["records"]:
            matches = [r for r in got if canonical(r, want) == canonical(want, want)]
            assert matches, f"{fx['name']}: no record {canonical(want, want)}"
            got.remove(matches[0])
    assert got == []  # nothing more than the fixtures say
    assert {m.split(b":")[0] for m in redis.zrange(contract.FETCH_DUE, 0, -1)} == {b"17841405726653026"}
    assert not list(redis.scan_iter(contract.account_key("0", "*")))
    assert redis.xlen(contract.INBOX_DEAD) == 0


def test_deliveries_during_a_drain_are_its_to_read_one_job_for_the_stream(client, settings, redis, tmp_path):
    """The web kicks one drain job; deliveries stored while it is on its way (or running) kick none, and
    it reads them all. Once it has ended, the next delivery kicks a drain of its own."""
    from rq import Queue

    from config.rq import QUEUE, SERIALIZER
    from tests.test_jobs import counted

    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    for i in range(5):
        post(client, payloads.encode(payloads.delivery("comments", "17841400000000001", f"1810000000{i}", 1)))
    assert [j.func_name for j in queue.get_jobs()] == [contract.Jobs.DRAIN_INBOX]
    run_worker(settings)
    assert len(records(tmp_path)) == 5 and counted(redis, "drain_inbox", "ok") == 1
    assert not redis.exists(contract.INBOX_PENDING)  # cleared as the drain ended
    post(client, payloads.encode(payloads.delivery("comments", "17841400000000001", "18100000009", 1)))
    assert [j.func_name for j in queue.get_jobs()] == [contract.Jobs.DRAIN_INBOX]


def test_a_delivery_stored_as_a_drain_ends_is_kicked_by_that_drain(settings, redis):
    """A delivery stored after the drain's last read, while its flag still stood, kicked nothing: the drain
    clears the flag, then finds the unread entry and kicks the next drain itself."""
    from rq import Queue

    from config.rq import QUEUE, SERIALIZER
    from workers import jobs

    ingest.ensure_group(redis)
    redis.set(contract.INBOX_PENDING, b"1", ex=contract.PENDING_TTL)  # this drain's own flag
    redis.xadd(contract.INBOX, {"b": payloads.encode(payloads.delivery("comments", "1784", "1810", 1)), "t": "0"})
    jobs._hand_on(redis)
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    assert [j.func_name for j in queue.get_jobs()] == [contract.Jobs.DRAIN_INBOX] and redis.exists(
        contract.INBOX_PENDING
    )
    redis.delete(contract.INBOX_PENDING)
    queue.empty()
    jobs.drain_inbox()  # reads the entry: nothing is left unread, so no drain is kicked (its record's delivery is)
    assert [j.func_name for j in queue.get_jobs()] == [contract.Jobs.DELIVER]
    assert not redis.exists(contract.INBOX_PENDING)


def test_the_tick_kicks_a_drain_of_an_inbox_whose_kick_was_lost(settings, redis, tmp_path):
    from rq import Queue

    from config.rq import QUEUE, SERIALIZER
    from workers import context, ticker

    ingest.ensure_group(redis)
    redis.xadd(contract.INBOX, {"b": payloads.encode(payloads.delivery("comments", "1784", "1810", 1)), "t": "0"})
    ticker.run(context.Context(settings, redis))  # the web's kick was lost: only the tick knows
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    assert contract.Jobs.DRAIN_INBOX in [j.func_name for j in queue.get_jobs()]
    run_worker(settings)
    assert len(records(tmp_path)) == 1 and redis.xlen(contract.INBOX) == 0
