"""New-media discovery and token refreshes against the sandbox Graph API."""

from __future__ import annotations

import json
import time

import pytest

from config import contract
from tests.conftest import run_worker
from workers import context, fetch, media_state, polling
from workers.graph_client import GraphClient, new_session


def records(tmp_path) -> list[dict]:  # type: ignore[no-untyped-def]
    path = tmp_path / "records.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def listed(sb, account: str, window: float = 7 * 86400) -> set[str]:  # type: ignore[no-untyped-def]
    """What polling should find: the media of the refresh schedule's window (7 days) and the live stories."""
    now = sb.now().timestamp()
    return {
        m.id
        for m in sb.data.media.values()
        if m.account_id == account
        and not m.parent_id
        and not m.deleted
        and now - m.timestamp.timestamp() < (86400 if m.media_product_type == "STORY" else window)
    }


def test_polling_finds_new_media_once(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    expected = listed(graph_sandbox, account)
    assert polling.poll_account(redis, graph_settings, account) == len(expected)
    due = {m.decode().split(":")[1] for m in redis.zrange(contract.FETCH_DUE, 0, -1)}
    assert due == expected
    assert redis.hget(contract.FETCH_TRIGGER, contract.media_member(account, next(iter(expected)))) == b"poll"
    assert len(expected) < 20  # the months of older history are past the schedule: not fetched
    graph_sandbox.reset_calls()
    assert polling.poll_account(redis, graph_settings, account) == 0
    assert graph_sandbox.total_calls == 2  # one page of /media, one of /stories
    new = graph_sandbox.add_media(account, "REELS", "VIDEO")
    story = graph_sandbox.add_media(account, "STORY", "VIDEO")
    assert polling.poll_account(redis, graph_settings, account) == 2
    state = redis.hgetall(contract.media(account, new))
    assert state[b"kind"] == b"REELS" and b"first_seen" in state
    assert redis.hget(contract.media(account, story), b"kind") == b"STORY"


def test_polling_pages_down_to_what_is_known(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    polling.poll_account(redis, graph_settings, account)
    for _ in range(120):  # more than two pages of /media
        graph_sandbox.add_media(account, "FEED", "IMAGE")
    graph_sandbox.reset_calls()
    assert polling.poll_account(redis, graph_settings, account) == 120
    assert graph_sandbox.calls["user_media"] == 3


def test_poll_due_polls_each_account_once_per_interval(graph_settings, graph_sandbox, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = context.Context(graph_settings, redis)
    assert polling.poll_due(ctx) == 0  # the accounts enter, each at its own phase of the interval
    later = time.time() + graph_settings.poll_interval  # every account's phase has come
    assert [polling.poll_due(ctx, later) for _ in range(3)] == [1, 1, 0]  # at most 1.5x the mean per tick
    run_worker(graph_settings)  # the poll jobs
    assert fetch.dispatch(ctx) == sum(len(listed(graph_sandbox, a)) for a in graph_sandbox.accounts)
    graph_sandbox.reset_calls()
    run_worker(graph_settings)  # the fetch jobs and the deliveries
    media_records = [r for r in records(tmp_path) if r["kind"] in ("media_insights", "story_insights")]
    assert len(media_records) == fetch.dispatch(ctx) + graph_sandbox.total_calls  # one call per media
    assert {r["trigger"] for r in media_records} == {"poll"}
    assert graph_sandbox.tokens_seen_in_url == 0


def test_story_is_looked_at_once_more_before_it_expires(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    story = graph_sandbox.add_media(account, "STORY", "IMAGE", timestamp=time.time() - 20 * 3600)
    polling.poll_account(redis, graph_settings, account)
    items = [i for i in fetch.claim(redis, time.time()) if i[1] == story]
    fetch.fetch_batch(redis, graph_settings, items)
    posted = graph_sandbox.media(story).timestamp.timestamp()
    assert redis.zscore(contract.FETCH_DUE, contract.media_member(account, story)) == pytest.approx(
        posted + 23 * 3600, abs=1
    )  # the story schedule counts from posting: its last look, an hour before it expires


def test_stories_in_any_order_are_all_found(graph_settings, graph_sandbox, redis, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from igrelay.sandbox import nodes

    account = graph_sandbox.accounts[0]
    polling.poll_account(redis, graph_settings, account)
    older = graph_sandbox.add_media(account, "STORY", "IMAGE", timestamp=time.time() - 3600)
    newer = graph_sandbox.add_media(account, "STORY", "VIDEO")
    listed_media = nodes.listed_media

    def oldest_first(view, account_id, *, stories):  # type: ignore[no-untyped-def]
        items = listed_media(view, account_id, stories=stories)
        return items[::-1] if stories else items  # Meta documents no order for /stories

    monkeypatch.setattr(nodes, "listed_media", oldest_first)
    assert polling.poll_account(redis, graph_settings, account) == 2
    assert {older, newer} <= {m.decode().split(":")[1] for m in redis.zrange(contract.FETCH_DUE, 0, -1)}


def test_token_refresh_after_24_hours_stores_and_uses_the_new_token(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    old = graph_sandbox.token_for(account)  # issued 10 days ago: Meta refreshes it
    now = time.time()
    assert polling.refresh_token(redis, graph_settings, account, now)  # age unknown: Meta is asked at once
    assert graph_sandbox.calls["refresh_token"] == 1
    assert not polling.refresh_token(redis, graph_settings, account, now + 3600)  # the new one is young
    assert polling.refresh_token(redis, graph_settings, account, now + 25 * 3600) is False  # sandbox clock: young
    graph_sandbox.advance(25 * 3600)
    assert polling.refresh_token(redis, graph_settings, account, now + 50 * 3600)
    stored = redis.hgetall(contract.token(account))
    assert float(stored[b"expires_at"]) - float(stored[b"issued_at"]) == 60 * 86400  # Meta's expires_in
    graph_sandbox.expire_token(account)  # the old token dies; the new one keeps working
    newest = GraphClient(None, graph_settings, redis).token(account)  # type: ignore[arg-type]
    for token in graph_sandbox.data.tokens.values():
        token.expired = token.value != newest
    assert newest != old
    with new_session() as session:
        assert GraphClient(session, graph_settings, redis).followers_count(account) is not None
    in_query = {r["path"] for r in graph_sandbox.requests_log if "access_token" in r["query"]}
    assert in_query == {"/refresh_access_token"}


def test_a_token_too_young_to_refresh_is_asked_about_again_later(tmp_path, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import make_settings

    account = graph_sandbox.accounts[0]
    young = graph_sandbox.issue_token(account, age=3600)
    settings = make_settings(tmp_path, GRAPH_API_URL=graph_sandbox.url, IG_ACCESS_TOKENS=f"{account}={young}")
    now = time.time()
    assert not polling.refresh_token(redis, settings, account, now)  # Meta: under 24 h old; not a failure
    assert not media_state.needs_reauth(redis, settings, account)
    assert not polling.refresh_token(redis, settings, account, now + 60)  # not asked again so soon
    assert graph_sandbox.calls["refresh_token"] == 1
    graph_sandbox.advance(24 * 3600)
    assert polling.refresh_token(redis, settings, account, now + polling.RETRY_YOUNG + 1)


def test_without_secret_key_no_refresh_is_asked_for(tmp_path, graph_sandbox, redis, caplog) -> None:  # type: ignore[no-untyped-def]
    from config import crypto
    from tests.conftest import sandbox_settings

    crypto._said.clear()
    settings = sandbox_settings(tmp_path, graph_sandbox, IGRELAY_SECRET_KEY="")
    account = graph_sandbox.accounts[0]
    for _ in range(2):
        assert not polling.refresh_token(redis, settings, account)
    assert graph_sandbox.calls["refresh_token"] == 0 and not redis.exists(contract.token(account))
    assert [r.getMessage() for r in caplog.records].count(
        crypto.MISSING + "; set it (the same value) on web and worker"
    ) == 1


def test_token_refresh_due_only_for_instagram_login(graph_settings, redis) -> None:  # type: ignore[no-untyped-def]
    ctx = context.Context(graph_settings, redis)
    assert polling.token_refresh_due(ctx) == 0
    later = time.time() + 6 * 3600
    assert polling.token_refresh_due(ctx, later) == 2 and polling.token_refresh_due(ctx, later) == 0


def test_polling_off_and_flagged_accounts_skipped(graph_settings, graph_sandbox, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import sandbox_settings

    off = sandbox_settings(tmp_path, graph_sandbox, IGRELAY_POLL_INTERVAL="0")
    assert polling.poll_due(context.Context(off, redis)) == 0
    account = graph_sandbox.accounts[0]
    graph_sandbox.expire_token(account)
    assert polling.poll_account(redis, graph_settings, account) == 0
    assert media_state.needs_reauth(redis, graph_settings, account)
    ctx = context.Context(graph_settings, redis)
    polling.poll_due(ctx)
    later = time.time() + graph_settings.poll_interval
    assert polling.poll_due(ctx, later) + polling.poll_due(ctx, later) == 1  # only the other account
