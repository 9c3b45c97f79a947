"""The dead-letter view: list and replay failed fetch and delivery jobs."""

from __future__ import annotations

import pytest
from conftest import make_settings, run_worker
from rq import Queue, Retry

from config import contract
from config.rq import QUEUE, SERIALIZER
from workers import failed
from workers import records as R
from workers.sinks import _ledger as ledger

CALLS: list[int] = []


@pytest.fixture(autouse=True)
def boom_is_a_job(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The worker runs igrelay's own jobs only; these tests' failing job is one more."""
    from workers import runner

    monkeypatch.setattr(runner, "ALLOWED", runner.ALLOWED | {f"{__name__}.boom"})


def boom(media_id: str) -> None:
    """A fetch that fails with a token in its message."""
    raise RuntimeError("GET /insights?access_token=EAABsecret123456 failed")


def fetch_job(redis, media_id: str):  # type: ignore[no-untyped-def]
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    return queue.enqueue(f"{__name__}.boom", args=(media_id,), failure_ttl=3600)


def test_lists_failed_fetches_with_scrubbed_messages(tmp_path, redis) -> None:
    settings = make_settings(tmp_path)
    job = fetch_job(redis, "m1")
    run_worker(settings)
    [item] = failed.list_failed(redis)
    assert item["id"] == job.id and item["queue"] == QUEUE and item["function"].endswith(".boom")
    assert item["sink"] is None and item["records"] is None and item["attempts"] == 1
    assert item["exception"] == "RuntimeError" and "EAABsecret" not in item["message"]
    assert item["failed_at"] and failed.list_failed(redis, sink="hook") == []


def test_replay_by_id_gives_fresh_retries(tmp_path, redis) -> None:
    settings = make_settings(tmp_path)
    first, second = fetch_job(redis, "m1"), fetch_job(redis, "m2")
    run_worker(settings)
    assert failed.replay(redis, job_ids=[first.id]) == 1
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    assert queue.job_ids == [first.id]
    job = queue.fetch_job(first.id)
    assert job.retries_left == len(job.retry_intervals) > 0
    assert [d["id"] for d in failed.list_failed(redis)] == [second.id]


def test_replay_of_a_sink_re_enables_it_and_skips_records_already_sent(tmp_path, redis) -> None:
    settings = make_settings(tmp_path)
    name = next(iter(settings.sinks))
    from workers.sinks import sink_name

    name = sink_name(name)
    records = [R.account_insights("1", f"2026-11-0{i}", {"reach": i}, {}, "poll") for i in (1, 2)]
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    ledger.disable(redis, name, 0)
    queue.enqueue(contract.Jobs.DELIVER, args=(name, records), retry=Retry(max=1, interval=[10]), failure_ttl=3600)
    run_worker(settings)
    [dead] = failed.list_failed(redis, sink=name)
    assert dead["records"] == 2 and dead["exception"] == "PermanentSinkError"
    ledger.mark(redis, name, [records[0]["id"]])  # this one got through before
    assert failed.replay(redis, sink=name, settings=settings) == 1 and not ledger.is_disabled(redis, name)
    run_worker(settings)
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    assert len(lines) == 1 and records[1]["id"] in lines[0]
