"""The subscription watchdog: Meta's view of the subscription, silent accounts, once-per-change alerts."""

from __future__ import annotations

import logging
import time

from rq import Queue

from config import contract, stats
from config.rq import QUEUE, SERIALIZER
from workers import context, jobs, subscriptions, watchdog
from workers.graph_client import GraphClient, new_session


def alerts(redis, account: str, problem: str) -> int:  # type: ignore[no-untyped-def]
    return int(redis.hget(contract.STATS, stats.field("igrelay_watchdog_alerts_total", problem=problem)) or 0)


def subscribe(settings, redis, account: str, fields: list[str]) -> None:  # type: ignore[no-untyped-def]
    with new_session(1) as session:
        client = GraphClient(session, settings, redis)
        subscriptions.subscribe(client, subscriptions.target(client, settings, account), fields)


def test_an_unsubscribed_account_is_flagged_once(graph_settings, graph_sandbox, redis, caplog) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    with caplog.at_level(logging.WARNING, logger="igrelay.watchdog"):
        assert set(watchdog.watch(redis, graph_settings, account)) == {"not_subscribed"}
        assert set(watchdog.watch(redis, graph_settings, account)) == {"not_subscribed"}
    assert alerts(redis, account, "not_subscribed") == 1 and len(caplog.records) == 1
    state = watchdog.state(redis, account)
    assert "igrelay subscribe" in state["problem"] and int(state["since"]) <= time.time()


def test_missing_fields_then_recovery(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    subscribe(graph_settings, redis, account, ["comments"])
    problems = watchdog.watch(redis, graph_settings, account)
    assert set(problems) == {"fields_missing"} and "live_comments" in problems["fields_missing"]
    subscribe(graph_settings, redis, account, ["comments", "live_comments"])
    assert watchdog.watch(redis, graph_settings, account) == {}
    state = watchdog.state(redis, account)
    assert state["problem"] == "" and "since" not in state


def test_deliveries_that_stopped_are_flagged(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    subscribe(graph_settings, redis, account, ["comments", "live_comments"])
    now = time.time()
    redis.set(contract.last_delivery(account), int(now - 3600))
    assert watchdog.watch(redis, graph_settings, account, now) == {}
    redis.delete(contract.last_delivery(account))  # expired: the watchdog remembers it
    problems = watchdog.watch(redis, graph_settings, account, now + 3 * 86400)
    assert set(problems) == {"deliveries_stopped"} and alerts(redis, account, "deliveries_stopped") == 1


def test_graph_trouble_keeps_the_last_verdict(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    watchdog.watch(redis, graph_settings, account)
    graph_sandbox.fail_next(10, "5xx")
    assert set(watchdog.watch(redis, graph_settings, account)) == {"not_subscribed"}


def test_due_checks_each_account_once_per_interval(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    ctx = context.Context(graph_settings, redis)
    assert watchdog.due(ctx) == 0  # the accounts enter, each at its own phase of the interval
    later = time.time() + graph_settings.watchdog_interval
    assert watchdog.due(ctx, later) == len(graph_sandbox.accounts)
    assert watchdog.due(ctx, later) == 0
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    assert all(job.func_name == contract.Jobs.WATCHDOG for job in queue.jobs)
    assert sorted(jobs.watchdog(graph_sandbox.accounts[1])) == ["not_subscribed"]


def test_check_shows_the_watchdog_verdict(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    from igrelay.commands import check

    account = graph_sandbox.accounts[0]
    watchdog.watch(redis, graph_settings, account)
    [row] = check.watchdog_rows(graph_settings, redis)
    assert row.status == "problem" and account in row.text and row.fix == "run `igrelay subscribe`"


def _facebook(tmp_path, redis, sb, toml: str = "", **extra):  # type: ignore[no-untyped-def]
    """Settings for ``sb`` played as Facebook Login on loopback, each account with its Page and Page token."""
    from tests.conftest import make_settings

    config = tmp_path / "igrelay.toml"
    tables = [
        f'[accounts."{a}"]\npage_id = "{sb.data.accounts[a].page_id}"\npage_token = "{sb.token_for(a)}"\n'
        for a in sb.accounts
    ]
    config.write_text("\n".join(tables) + toml)
    tokens = ",".join(f"{a}={sb.token_for(a)}" for a in sb.accounts)
    env = {"GRAPH_API_URL": sb.url, "IGRELAY_LOGIN_TYPE": "facebook", "IG_ACCESS_TOKENS": tokens}
    return make_settings(tmp_path, IGRELAY_CONFIG=str(config), **env, **extra)


def test_a_page_is_judged_by_this_apps_entry_only(tmp_path, redis) -> None:  # type: ignore[no-untyped-def]
    from igrelay.sandbox import DEFAULT_APP_ID, Sandbox

    with Sandbox(login_type="facebook") as sb:
        account = sb.accounts[0]
        settings = _facebook(tmp_path, redis, sb, META_APP_ID=DEFAULT_APP_ID)
        # another app on the Page has feed and messages: that says nothing about this app
        assert set(watchdog.watch(redis, settings, account)) == {"not_subscribed"}
        subscribe(settings, redis, account, list(subscriptions.fields_for(settings)))
        assert watchdog.watch(redis, settings, account) == {}
        unknown = _facebook(tmp_path, redis, sb)  # no META_APP_ID: two apps listed, ours unknown
        assert set(watchdog.watch(redis, unknown, account)) == {"app_unknown"}


def test_facebook_login_subscribes_the_page_to_the_fields_it_uses(tmp_path, redis) -> None:  # type: ignore[no-untyped-def]
    from igrelay.sandbox import Sandbox

    with Sandbox(login_type="facebook") as sb:
        plain = _facebook(tmp_path, redis, sb)
        assert subscriptions.fields_for(plain) == ("feed",)
        wanted = '\n[subscribe]\nfields = ["comments", "messages", "messaging_postbacks", "messaging_seen"]\n'
        messaging = _facebook(tmp_path, redis, sb, wanted)
        fields = subscriptions.fields_for(messaging)
        assert fields == ("feed", "messages", "messaging_postbacks", "message_reads")
        subscribe(messaging, redis, sb.accounts[0], list(fields))
        assert sb.data.accounts[sb.accounts[0]].page_fields == list(fields)
