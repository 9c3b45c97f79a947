"""Account insights on Meta's Pacific days, fetched again after 48 h, with follows/unfollows,
follower_count, online_followers and demographics; per-media breakdowns; against the sandbox."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from config import contract, periodic
from igrelay.sandbox.account_insights import _daily as sandbox_daily
from tests.conftest import run_worker, sandbox_settings
from workers import account_insights, context, records
from workers.changes import Change
from workers.graph_client import open_client

DAY = "2026-11-25"  # a Pacific day of standard time: it ends at 2026-11-26T08:00:00Z
AFTER_DAY = datetime(2026, 11, 27, 3, 0, tzinfo=UTC).timestamp()  # 26 Nov 19:00 Pacific: the UTC date is already 27


def insights_calls(sb: Any) -> list[dict[str, str]]:
    return [r["query"] for r in sb.requests_log if r["path"].endswith("/insights")]


def test_day_window_and_end_time_follow_pacific_midnight_with_daylight_saving() -> None:
    assert account_insights.day_window(DAY) == (
        int(datetime(2026, 11, 25, 8, tzinfo=UTC).timestamp()),
        int(datetime(2026, 11, 26, 8, tzinfo=UTC).timestamp()),
    )
    assert account_insights.day_window("2026-07-10")[1] == int(datetime(2026, 7, 11, 7, tzinfo=UTC).timestamp())
    assert account_insights.day_of("2026-11-26T08:00:00+0000") == DAY
    assert account_insights.day_of("2026-07-11T07:00:00+0000") == "2026-07-10"
    assert account_insights.due_days(AFTER_DAY)["first"] == DAY  # not the UTC yesterday, 2026-11-26


def test_account_record_is_labelled_with_metas_day(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    daily = account_insights.fetch_day(redis, graph_settings, account, now=AFTER_DAY)[0]
    assert daily["kind"] == "account_insights" and daily["day"] == DAY and "timeframe" not in daily
    for name in ("reach", "views", "likes", "follower_count"):
        assert daily["metrics"][name] == sandbox_daily(account, name, DAY), name
    since, until = account_insights.day_window(DAY)
    assert all(
        q["since"] == str(since) and q["until"] == str(until) for q in insights_calls(graph_sandbox) if "since" in q
    )


def test_follows_and_unfollows_come_from_the_follow_type_breakdown(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    daily = account_insights.fetch_day(redis, graph_settings, account, now=AFTER_DAY)[0]
    assert daily["metrics"]["follows"] == sandbox_daily(account, "follows_and_unfollows:FOLLOWER", DAY)
    assert daily["metrics"]["unfollows"] == sandbox_daily(account, "follows_and_unfollows:NON_FOLLOWER", DAY)
    assert "follows_and_unfollows" not in daily["metrics"]
    assert set(daily["breakdowns"]["follows_and_unfollows"]["follow_type"]) == {"FOLLOWER", "NON_FOLLOWER"}
    asked = [q for q in insights_calls(graph_sandbox) if "follows_and_unfollows" in q["metric"]]
    assert asked and all(q["breakdown"] == "follow_type" for q in asked)
    graph_sandbox.data.accounts[account].followers_count = 50  # Meta leaves it out under 100 followers
    later = account_insights.fetch_day(redis, graph_settings, account, DAY, now=AFTER_DAY + 3 * 86400)[0]
    assert later["unavailable"]["follows"] == later["unavailable"]["unfollows"] == "no_data"


def test_each_day_is_fetched_again_48_hours_after_it_ends(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    end = account_insights.day_window(DAY)[1]
    assert account_insights.due_days(end + 47 * 3600)["again"] != DAY
    assert account_insights.due_days(end + 48 * 3600 + 60)["again"] == DAY
    ctx = context.Context(graph_settings, redis)
    accounts = len(graph_sandbox.accounts)
    assert account_insights.due(ctx, end + 3600) == 0  # the accounts enter, each within the next half hour
    assert account_insights.due(ctx, end + 3600 + periodic.INSIGHTS_SPREAD) == 2 * accounts
    assert account_insights.due(ctx, end + 7200) == 0
    assert account_insights.due(ctx, end + 48 * 3600 + 60) == 2 * accounts  # DAY again, and a new first day
    account = graph_sandbox.accounts[0]
    assert redis.exists(contract.lock(f"account_insights:{DAY}:again", account))

    first = account_insights.fetch_day(redis, graph_settings, account, DAY, now=end + 3600)
    graph_sandbox.data.accounts[account].followers_count += 7  # a running total moves; the day's numbers did not
    assert account_insights.fetch_day(redis, graph_settings, account, DAY, now=end + 48 * 3600 + 60) == []
    graph_sandbox.withdraw_metric("replies")  # Meta's numbers for the day changed
    second = account_insights.fetch_day(redis, graph_settings, account, DAY, now=end + 48 * 3600 + 120)
    assert len(second) == 1 and second[0]["id"] != first[0]["id"] and second[0]["day"] == DAY
    assert second[0]["unavailable"]["replies"] == "unsupported"
    assert second[0]["metrics"]["followers_count"] == first[0]["metrics"]["followers_count"]


def test_demographics_and_online_followers(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    daily, *snapshots = account_insights.fetch_day(redis, graph_settings, account, now=AFTER_DAY)
    hours = daily["breakdowns"]["online_followers"]["hour"]
    assert hours == {str(h): sandbox_daily(account, f"online_followers:{h}", DAY) for h in range(24)}
    assert [s["timeframe"] for s in snapshots] == ["this_week", "this_month"]
    for snap in snapshots:
        assert snap["day"] == DAY and snap["metrics"] == {} and snap["unavailable"] == {}
        for metric in ("follower_demographics", "engaged_audience_demographics"):
            assert set(snap["breakdowns"][metric]) == {"age", "city", "country", "gender"}
            assert set(snap["breakdowns"][metric]["gender"]) == {"F", "M", "U"}
    demographic = [q for q in insights_calls(graph_sandbox) if "demographics" in q["metric"]]
    assert {(q["timeframe"], q["breakdown"], q["period"]) for q in demographic} == {
        (t, b, "lifetime") for t in ("this_week", "this_month") for b in ("age", "city", "country", "gender")
    }
    later = account_insights.fetch_day(redis, graph_settings, account, DAY, now=AFTER_DAY + 3 * 86400)
    assert "timeframe" not in json.dumps(later)  # the second fetch of a day takes no new demographics


def test_the_job_runs_from_the_tick(graph_settings, graph_sandbox, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = context.Context(graph_settings, redis)
    assert account_insights.due(ctx, time.time() - periodic.INSIGHTS_SPREAD) == 0  # entered half an hour ago
    assert account_insights.due(ctx) == 2 * len(graph_sandbox.accounts) and account_insights.due(ctx) == 0
    run_worker(graph_settings)
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    out = [json.loads(line) for line in lines]
    days = [r for r in out if r["kind"] == "account_insights" and "timeframe" not in r]
    assert len(days) == 2 * len(graph_sandbox.accounts)  # the day just over and the one 48 h past
    account = graph_sandbox.accounts[0]
    mine = next(r for r in days if r["account_id"] == account)
    assert mine["metrics"]["followers_count"] == graph_sandbox.data.accounts[account].followers_count
    assert {"reach", "views", "accounts_engaged", "follows", "unfollows"} <= set(mine["metrics"])


STORY_METRICS = 'STORY = ["views", "reach", "replies", "navigation", "profile_activity"]\n'


def story_of(sb: Any, account: str) -> str:
    """A live story with enough viewers for insights."""
    from igrelay.sandbox.media_insights import viewers

    now = sb.now()
    return next(
        m.id
        for m in sb.data.media.values()
        if m.account_id == account and m.media_product_type == "STORY" and viewers(m, now) >= 5
    )


@pytest.fixture
def breakdown_settings(tmp_path, graph_sandbox):  # type: ignore[no-untyped-def]
    config = tmp_path / "igrelay.toml"
    config.write_text(f'[metrics]\n{STORY_METRICS}MEDIA_BREAKDOWNS = ["navigation", "profile_activity"]\n')
    return sandbox_settings(tmp_path, graph_sandbox, IGRELAY_CONFIG=str(config))


def test_per_media_breakdowns_when_configured(breakdown_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    story = story_of(graph_sandbox, account)
    with open_client(breakdown_settings, redis) as client:
        result = client.media(account, story, "STORY", "IMAGE")
    navigation = result.breakdowns["navigation"]["story_navigation_action_type"]
    assert set(navigation) <= {"tap_forward", "tap_back", "tap_exit", "swipe_forward"}
    assert sum(navigation.values()) == result.metrics["navigation"]
    assert sum(result.breakdowns["profile_activity"]["action_type"].values()) == result.metrics["profile_activity"]
    record = records.media_insights(
        account, result.node, result.metrics, result.unavailable, "poll", breakdowns=result.breakdowns
    )
    assert record["breakdowns"] == result.breakdowns


def test_per_media_breakdowns_cost_nothing_unless_configured(tmp_path, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "igrelay.toml"
    config.write_text(f"[metrics]\n{STORY_METRICS}")
    settings = sandbox_settings(tmp_path, graph_sandbox, IGRELAY_CONFIG=str(config))
    account = graph_sandbox.accounts[0]
    graph_sandbox.reset_calls()
    with open_client(settings, redis) as client:
        result = client.media(account, story_of(graph_sandbox, account), "STORY", "IMAGE")
    assert graph_sandbox.total_calls == 1 and result.breakdowns == {}


def test_story_webhook_and_api_records_use_one_vocabulary(breakdown_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    story = story_of(graph_sandbox, account)
    with open_client(breakdown_settings, redis) as client:
        fetched = client.media(account, story, "STORY", "IMAGE")
    api = records.media_insights(
        account, fetched.node, fetched.metrics, fetched.unavailable, "poll", breakdowns=fetched.breakdowns
    )
    legacy = {
        "media_id": story,
        "exits": 1,
        "replies": 0,
        "reach": 17,
        "taps_forward": 12,
        "taps_back": -1,
        "impressions": 28,
    }
    hook = records.story_insights_from_webhook(Change("instagram", account, "story_insights", legacy, None, "k"))
    assert set(hook["metrics"]) <= set(api["metrics"]) and hook["metrics"]["views"] == 28
    hook_steps = hook["breakdowns"]["navigation"]["story_navigation_action_type"]
    assert set(hook_steps) <= set(api["breakdowns"]["navigation"]["story_navigation_action_type"]) | {"tap_back"}
    assert hook_steps == {"tap_forward": 12, "tap_exit": 1}
    assert hook["unavailable"] == {"navigation.tap_back": "fewer_than_5"}
    assert hook["webhook_metrics"] == {k: v for k, v in legacy.items() if k != "media_id"}


def test_breakdowns_become_sql_rows(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    from workers.sinks import load

    found = {"follower_demographics": {"country": {"US": 300, "DE": 148}, "gender": {"F": 481}}}
    record = records.account_insights("1", DAY, {}, {}, "schedule", breakdowns=found, timeframe="this_week")
    path = tmp_path / "b.sqlite3"
    sink = load(f"sqlite:///{path}", {}, settings)
    try:
        sink.send([record, record])
        sink.send([record])
    finally:
        sink.close()
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT key, value FROM record_breakdowns WHERE metric = 'follower_demographics'"
            " AND breakdown = 'country' ORDER BY value DESC"
        ).fetchall()
    db.close()
    assert rows == [("US", 300.0), ("DE", 148.0)]
