"""Fetch scheduling and policies through real RQ workers, a real Redis and the sandbox Graph API."""

from __future__ import annotations

import json
import time

import pytest

from config import contract, stats
from igrelay import payloads
from tests.conftest import SECRET, run_worker
from workers import context, fetch, media_state, metric_registry, schedule


def records(tmp_path) -> list[dict]:  # type: ignore[no-untyped-def]
    path = tmp_path / "records.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_due(settings, redis, now: float | None = None) -> int:  # type: ignore[no-untyped-def]
    """One dispatcher pass, then a real worker until the queues are empty."""
    n = fetch.dispatch(context.Context(settings, redis), now)
    run_worker(settings)
    return n


def media_of(sb, account: str, product: str, kind: str | None = None) -> str:  # type: ignore[no-untyped-def]
    return next(
        m.id
        for m in sb.data.media.values()
        if m.account_id == account and m.media_product_type == product and (kind is None or m.media_type == kind)
    )


def known(redis, account: str, media_id: str, product: str, media_type: str = "IMAGE") -> None:  # type: ignore[no-untyped-def]
    """What polling would have stored about a media."""
    redis.hset(contract.media(account, media_id), mapping={"kind": product, "media_type": media_type})


def due(redis, account: str, media_id: str, at: float | None = None, trigger: str = "comments") -> None:  # type: ignore[no-untyped-def]
    schedule.request_fetch(redis, account, media_id, trigger, at if at is not None else time.time())


def fetch_at(settings, redis, at: float) -> None:  # type: ignore[no-untyped-def]
    """Claim and fetch what is due at ``at`` as if it were then, and deliver the records."""
    fetch.fetch_batch(redis, settings, fetch.claim(redis, at), at)
    run_worker(settings)


def counter(redis, name: str, **labels: str) -> int:  # type: ignore[no-untyped-def]
    return int(redis.hget(contract.STATS, stats.field(name, **labels)) or 0)


def test_each_media_type_becomes_a_record(graph_settings, graph_sandbox, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    ids = [m.id for m in graph_sandbox.data.media.values() if m.account_id == account and not m.parent_id]
    for media_id in ids:
        due(redis, account, media_id)
    assert run_due(graph_settings, redis) == len(ids)
    out = {r["media_id"]: r for r in records(tmp_path)}
    assert set(out) == set(ids)
    for media_id in ids:
        media, record = graph_sandbox.media(media_id), out[media_id]
        assert record["media_product_type"] == media.media_product_type and record["trigger"] == "comments"
        assert record["kind"] == ("story_insights" if media.media_product_type == "STORY" else "media_insights")
        next_at = redis.zscore(contract.FETCH_DUE, contract.media_member(account, media_id))
        if media.media_product_type == "STORY":  # on the story's own schedule, counted from its posting
            posted = media.timestamp.timestamp()
            expected = min(posted + o for o in graph_settings.story_schedule if posted + o > time.time())
            assert next_at == pytest.approx(expected, abs=30)
        else:
            assert next_at == pytest.approx(time.time() + 3600, abs=30)
        if media.story_viewers < 5:  # not yet: asked again on its schedule
            assert record["metrics"] == {} and set(record["unavailable"].values()) == {"not_enough_viewers"}
        else:
            assert record["metrics"]["reach"] > 0 and record["permalink"].startswith("https://www.instagram.com/")
    assert graph_sandbox.tokens_seen_in_url == 0


def test_burst_of_webhooks_makes_one_fetch(graph_settings, graph_sandbox, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from webhook import create_app

    account = graph_sandbox.accounts[0]
    media_id = media_of(graph_sandbox, account, "REELS")
    known(redis, account, media_id, "REELS", "VIDEO")
    client = create_app(graph_settings, redis=redis).test_client()
    for _ in range(20):
        body = payloads.encode(payloads.delivery("comments", account, media_id, count=5))
        client.post("/webhook", data=body, headers={"X-Hub-Signature-256": payloads.sign(body, SECRET)})
    run_worker(graph_settings)  # drains the inbox: 100 changes, one pending fetch
    graph_sandbox.reset_calls()
    assert run_due(graph_settings, redis) == 0  # still inside the debounce window
    assert run_due(graph_settings, redis, now=time.time() + 31) == 1
    assert graph_sandbox.total_calls == 1
    assert len([r for r in records(tmp_path) if r["kind"] == "media_insights"]) == 1


def test_trigger_during_a_running_fetch_makes_one_more(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    media_id = media_of(graph_sandbox, account, "FEED", "IMAGE")
    known(redis, account, media_id, "FEED")
    due(redis, account, media_id)
    items = fetch.claim(redis, time.time())
    assert items == [[account, media_id, "comments"]]
    due(redis, account, media_id, time.time())  # a comment arrives while the fetch runs
    assert fetch.claim(redis, time.time()) == []  # not twice at once
    fetch.fetch_batch(redis, graph_settings, items)
    assert fetch.claim(redis, time.time() + 10) == [[account, media_id, "comments"]]  # one more, afterwards


def test_steady_state_is_one_call_per_refresh_and_unchanged_metrics_emit_nothing(
    graph_settings, graph_sandbox, redis, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    old = [graph_sandbox.add_media(account, "FEED", "IMAGE", timestamp=time.time() - 40 * 86400) for _ in range(10)]
    for media_id in old:
        known(redis, account, media_id, "FEED")
        due(redis, account, media_id)
    graph_sandbox.reset_calls()
    run_due(graph_settings, redis)
    assert graph_sandbox.total_calls == 10 and len(records(tmp_path)) == 10
    for media_id in old:  # the next refreshes: values have plateaued, so nothing new to say
        due(redis, account, media_id, trigger="schedule")
    run_due(graph_settings, redis)
    assert graph_sandbox.total_calls == 20 and len(records(tmp_path)) == 10


def test_withdrawn_metric_end_to_end(graph_settings, graph_sandbox, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    media_id = media_of(graph_sandbox, account, "REELS")
    known(redis, account, media_id, "REELS", "VIDEO")
    graph_sandbox.withdraw_metric("ig_reels_avg_watch_time")
    graph_sandbox.reset_calls()
    due(redis, account, media_id)
    run_due(graph_settings, redis)
    assert graph_sandbox.total_calls == 2
    [record] = records(tmp_path)
    assert record["unavailable"]["ig_reels_avg_watch_time"] == "unsupported" and record["metrics"]["views"] > 0
    other = graph_sandbox.add_media(account, "REELS", "VIDEO")
    known(redis, account, other, "REELS", "VIDEO")
    due(redis, account, other)
    run_due(graph_settings, redis)
    assert graph_sandbox.total_calls == 3  # learned once, for every worker


def test_throttle_pauses_the_account_and_reschedules(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    ids = [graph_sandbox.add_media(account, "FEED", "IMAGE") for _ in range(30)]
    for media_id in ids:
        known(redis, account, media_id, "FEED")
        due(redis, account, media_id)
    graph_sandbox.fail_next(1000, "throttle")
    graph_sandbox.reset_calls()
    now = time.time()
    run_due(graph_settings, redis, now)
    calls = graph_sandbox.total_calls
    assert 1 <= calls <= graph_settings.fetch_threads  # at most the calls already in flight
    assert int(redis.get(contract.paused_until(account))) == pytest.approx(now + 60, abs=5)
    scores = [redis.zscore(contract.FETCH_DUE, contract.media_member(account, m)) for m in ids]
    assert all(s == pytest.approx(now + 60, abs=5) for s in scores)
    pauses = redis.hget(contract.STATS, "igrelay_rate_limit_pauses_total")
    assert pauses == b"1"  # one pause for the account, not one per media
    due(redis, account, ids[0], now)  # a webhook during the pause
    assert run_due(graph_settings, redis, now + 30) == 0 and graph_sandbox.total_calls == calls
    graph_sandbox.reset_calls()
    graph_sandbox._faults.clear()  # Meta lets us back in
    assert run_due(graph_settings, redis, now + 61) == 30
    assert graph_sandbox.total_calls == 30


def test_expired_token_flags_the_account_and_stops_its_fetches(graph_settings, graph_sandbox, redis, caplog) -> None:  # type: ignore[no-untyped-def]
    account, other = graph_sandbox.accounts[:2]
    ids = [graph_sandbox.add_media(account, "FEED", "IMAGE") for _ in range(20)]
    for media_id in ids:
        known(redis, account, media_id, "FEED")
        due(redis, account, media_id)
    due(redis, other, media_of(graph_sandbox, other, "REELS"))
    graph_sandbox.expire_token(account)
    graph_sandbox.reset_calls()
    run_due(graph_settings, redis)
    assert graph_sandbox.total_calls <= graph_settings.fetch_threads + 2
    assert media_state.needs_reauth(redis, graph_settings, account)
    assert not media_state.needs_reauth(redis, graph_settings, other)
    assert counter(redis, "igrelay_account_needs_reauth_total") == 1
    assert all(redis.zscore(contract.FETCH_DUE, contract.media_member(account, m)) is None for m in ids)
    graph_sandbox.reset_calls()
    for media_id in ids:  # more comments arrive: no calls while the account is flagged
        due(redis, account, media_id)
    run_due(graph_settings, redis)
    assert graph_sandbox.total_calls == 0
    assert counter(redis, "igrelay_fetch_skipped_total", reason="needs_reauth") == 20


def test_terminal_answers_become_records_with_reasons(graph_settings, graph_sandbox, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    pre = graph_sandbox.add_media(account, "FEED", "IMAGE", pre_conversion=True)
    denied = graph_sandbox.add_media(account, "FEED", "IMAGE")
    graph_sandbox.deny_media(denied)
    for media_id in (pre, denied):
        due(redis, account, media_id)
    run_due(graph_settings, redis)
    out = {r["media_id"]: r for r in records(tmp_path)}
    assert set(out[pre]["unavailable"].values()) == {"pre_conversion"}
    assert set(out[denied]["unavailable"].values()) == {"no_permission"}
    assert not media_state.needs_reauth(redis, graph_settings, account)  # one media refused, not the account
    assert redis.zcard(contract.FETCH_DUE) == 0  # no retry
    assert set(out[pre]["unavailable"]) == set(metric_registry.configured(graph_settings, "FEED", "IMAGE"))
    graph_sandbox.reset_calls()
    for media_id in (pre, denied):  # more comments later: Meta already said no, so no call and no new record
        due(redis, account, media_id)
    run_due(graph_settings, redis)
    assert graph_sandbox.total_calls == 0 and len(records(tmp_path)) == 2


def test_gone_only_once_it_repeats_an_hour_apart(graph_settings, graph_sandbox, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    flaky, gone = (graph_sandbox.add_media(account, "FEED", "IMAGE") for _ in range(2))
    for media_id in (flaky, gone):
        known(redis, account, media_id, "FEED")
        graph_sandbox.delete_media(media_id)
        due(redis, account, media_id)
    now = time.time()
    fetch_at(graph_settings, redis, now)
    assert records(tmp_path) == []  # a first 100/33 may be transient: no tombstone yet
    for media_id in (flaky, gone):
        at = redis.zscore(contract.FETCH_DUE, contract.media_member(account, media_id))
        assert at == pytest.approx(now + 3600, abs=2)
    due(redis, account, gone, now + 600)  # a comment inside the hour: still waits for the hour
    fetch_at(graph_settings, redis, now + 600)
    assert redis.zscore(contract.FETCH_DUE, contract.media_member(account, gone)) == pytest.approx(now + 3600, abs=2)
    graph_sandbox.data.media[flaky].deleted = False  # Meta answers it again
    fetch_at(graph_settings, redis, now + 3601)
    out = {r["media_id"]: r for r in records(tmp_path)}
    assert set(out[gone]["unavailable"].values()) == {"gone"} and out[flaky]["metrics"]["views"] > 0
    assert redis.hget(contract.media(account, flaky), "gone_at") is None
    assert redis.zscore(contract.FETCH_DUE, contract.media_member(account, gone)) is None


def test_a_young_story_is_asked_again_until_it_has_viewers(graph_settings, graph_sandbox, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    story = graph_sandbox.add_media(account, "STORY", "IMAGE", story_viewers=80)
    posted = graph_sandbox.media(story).timestamp.timestamp()
    redis.hset(contract.media(account, story), mapping={"kind": "STORY", "media_type": "IMAGE"})
    due(redis, account, story, posted)
    fetch_at(graph_settings, redis, posted)
    [first] = records(tmp_path)
    assert set(first["unavailable"].values()) == {"not_enough_viewers"} and first["metrics"] == {}
    at = redis.zscore(contract.FETCH_DUE, contract.media_member(account, story))
    assert at == pytest.approx(posted + graph_settings.story_schedule[0], abs=1)  # 15 minutes after posting, not never
    graph_sandbox.advance(3 * 3600)  # viewers come
    fetch_at(graph_settings, redis, posted + 3 * 3600)
    second = records(tmp_path)[-1]
    assert second["metrics"]["reach"] >= 5 and "not_enough_viewers" not in second["unavailable"].values()
    next_at = redis.zscore(contract.FETCH_DUE, contract.media_member(account, story))
    assert next_at == pytest.approx(posted + 6 * 3600, abs=1)


def test_an_app_throttle_pauses_every_account(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account, other = graph_sandbox.accounts[:2]
    media_id = media_of(graph_sandbox, account, "FEED", "IMAGE")
    known(redis, account, media_id, "FEED")
    due(redis, account, media_id)
    graph_sandbox.fail_next(1, "throttle_app")  # code 4: the app's limit, whichever account asked
    run_due(graph_settings, redis)
    assert media_state.is_paused(redis, account) and media_state.is_paused(redis, other)


def test_a_user_throttle_pauses_the_accounts_of_that_token(tmp_path, redis) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import make_settings
    from workers import graph

    settings = make_settings(tmp_path, IG_ACCESS_TOKENS="1=shared,2=shared,3=other")
    exc = graph.classify(400, {"error": {"code": 17, "message": "(#17) User request limit reached"}}, {})
    outcome = fetch.Outcome(["1", "55", "comments"], {"kind": "FEED"}, error=exc)
    fetch.finish(redis, settings, [outcome])
    assert [media_state.is_paused(redis, a) for a in ("1", "2", "3")] == [True, True, False]


def test_usage_above_80_percent_slows_the_account_down(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account, other = graph_sandbox.accounts[:2]
    graph_sandbox.usage_budget = 10  # 8 calls of one account read 80 % in its X-Business-Use-Case-Usage
    ids = [graph_sandbox.add_media(account, "FEED", "IMAGE") for _ in range(8)]
    for media_id in ids:
        known(redis, account, media_id, "FEED")
        due(redis, account, media_id)
    run_due(graph_settings, redis)
    assert media_state.is_paused(redis, account) and not media_state.is_paused(redis, other)
    assert counter(redis, "igrelay_rate_limit_paced_total", scope="account") >= 1
    due(redis, account, ids[0])
    graph_sandbox.reset_calls()
    assert run_due(graph_settings, redis) == 0 and graph_sandbox.total_calls == 0  # held back before Meta throttles


def test_ticker_runs_the_dispatcher_and_periodic_tasks(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    from workers import ticker

    account = graph_sandbox.accounts[0]
    due(redis, account, media_of(graph_sandbox, account, "REELS"))
    ticker.run(context.Context(graph_settings, redis))
    assert redis.zcard(contract.FETCH_DUE) == 0  # claimed and enqueued
    assert redis.zscore(contract.due("poll"), account) and redis.zscore(contract.due("token"), account)  # entered


def test_transient_errors_back_off_boundedly(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    media_id = media_of(graph_sandbox, account, "FEED", "IMAGE")
    known(redis, account, media_id, "FEED")
    graph_sandbox.fail_next(100, "5xx")
    now = time.time()
    due(redis, account, media_id, now)
    delays = []
    for _ in range(fetch.MAX_TRANSIENT + 1):
        items = fetch.claim(redis, now + 10**6)
        fetch.fetch_batch(redis, graph_settings, items)
        delays.append(redis.zscore(contract.FETCH_DUE, contract.media_member(account, media_id)) - time.time())
    assert delays[0] == pytest.approx(30, rel=0.3) and delays[1] == pytest.approx(60, rel=0.3)
    assert delays[-1] > 3000  # gave up: back on the regular refresh schedule
    assert counter(redis, "igrelay_fetches_total", outcome="failed") == 1


def test_no_token_in_redis(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    from rq import Queue

    from config.rq import QUEUE, SERIALIZER

    account = graph_sandbox.accounts[0]
    token = graph_sandbox.token_for(account).encode()
    graph_sandbox.fail_next(1000, "5xx")
    Queue(QUEUE, connection=redis, serializer=SERIALIZER).enqueue("workers.jobs.account_insights", account)
    due(redis, account, media_of(graph_sandbox, account, "FEED", "IMAGE"))
    run_due(graph_settings, redis)
    graph_sandbox.expire_token(account)
    graph_sandbox._faults.clear()
    due(redis, account, media_of(graph_sandbox, account, "REELS"))
    run_due(graph_settings, redis)
    texts = _stored_exceptions(redis)
    assert any("TransientError" in t for t in texts)  # a stored failure, redacted
    assert not any(token.decode() in t for t in texts)
    for key in redis.scan_iter("*"):
        if not key.startswith(contract.token("").encode()):  # the one place a refreshed token is meant to be
            assert token not in _dump(redis, key), key


def _stored_exceptions(redis) -> list[str]:  # type: ignore[no-untyped-def]
    from rq.job import Job

    from config.rq import SERIALIZER

    texts = []
    for key in redis.scan_iter("rq:job:*"):
        job = Job.fetch(key.decode().split(":")[-1], connection=redis, serializer=SERIALIZER)
        texts += [job.exc_info or ""] + [r.exc_string or "" for r in job.results()]
    return texts


def _dump(redis, key: bytes) -> bytes:  # type: ignore[no-untyped-def]
    kind = redis.type(key)
    if kind == b"string":
        return redis.get(key) or b""
    if kind == b"hash":
        return b" ".join(k + b"=" + v for k, v in redis.hgetall(key).items())
    if kind == b"list":
        return b" ".join(redis.lrange(key, 0, -1))
    if kind in (b"set",):
        return b" ".join(redis.smembers(key))
    if kind == b"zset":
        return b" ".join(m for m, _ in redis.zrange(key, 0, -1, withscores=True))
    if kind == b"stream":
        return b" ".join(v for _, fields in redis.xrange(key) for v in fields.values())
    return b""


def test_next_refresh_and_story_last_look() -> None:
    assert media_state.next_refresh(0, 10, (3600, 86400)) == 3600
    assert media_state.next_refresh(0, 90000, (3600, 86400)) is None
    posted = 1000.0  # a story's offsets count from its posting, whenever it was first seen
    assert media_state.next_refresh(posted + 7200, posted + 7300, (3600, 10800, 86400), posted) == posted + 10800
    assert media_state.next_refresh(posted + 7200, posted + 30000, (3600, 21600, 86400), posted) == posted + 23 * 3600
    assert media_state.next_refresh(posted, posted + 23 * 3600 + 1, (3600,), posted) is None


def test_claim_skips_and_removes_malformed_members_and_loses_nothing(redis) -> None:  # type: ignore[no-untyped-def]
    """A member with an empty, non-numeric or path-like id errs the script no more: the good members
    around it are claimed in the same call, the bad ones are removed."""
    now = time.time()
    good = [("17841400000000001", f"1810000000000000{n}") for n in range(3)]
    bad = [":18100000000000009", "17841400000000001:", "17841400000000001:../../refresh_access_token", "x"]
    schedule.request_fetch(redis, *good[0], "comments", now - 3)
    for n, member in enumerate(bad):
        redis.zadd(contract.FETCH_DUE, {member: now - 2 + n * 0.1})
    schedule.request_fetch(redis, *good[1], "comments", now - 1)
    redis.set(contract.paused_until(good[2][0]), "not-a-number")  # a garbled pause mark pauses nothing
    schedule.request_fetch(redis, *good[2], "comments", now - 0.5)
    assert sorted(fetch.claim(redis, now)) == sorted([a, m, "comments"] for a, m in good)
    assert redis.zcard(contract.FETCH_DUE) == 0 and redis.hlen(contract.FETCH_TRIGGER) == 0
    assert counter(redis, "igrelay_fetch_skipped_total", reason="malformed") == len(bad)
