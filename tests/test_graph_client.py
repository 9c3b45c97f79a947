"""workers.graph_client against a real sandbox Graph API and a real Redis."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from config import contract, stats
from workers import graph, metric_registry
from workers.graph_client import GraphClient, new_session


@pytest.fixture
def client(graph_settings, redis) -> Iterator[GraphClient]:  # type: ignore[no-untyped-def]
    with new_session(4) as session:
        yield GraphClient(session, graph_settings, redis, timeout=(1.0, 1.0))


def media_of(sb, account: str, product: str, kind: str | None = None) -> str:  # type: ignore[no-untyped-def]
    return next(
        m.id
        for m in sb.data.media.values()
        if m.account_id == account
        and m.media_product_type == product
        and not m.parent_id
        and (kind is None or m.media_type == kind)
    )


@pytest.mark.parametrize("product", ["FEED", "REELS", "STORY"])
def test_one_call_gives_node_and_metrics(client, graph_sandbox, product) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    media_id = media_of(graph_sandbox, account, product)
    graph_sandbox.reset_calls()
    result = client.media(account, media_id, product)
    assert graph_sandbox.total_calls == 1 and graph_sandbox.tokens_seen_in_url == 0
    assert result.node["media_product_type"] == product and result.node["id"] == media_id
    assert result.metrics["reach"] > 0 and set(result.unavailable) <= set(
        metric_registry.configured(client.settings, product)
    )


@pytest.mark.parametrize("style", ["single", "multi", "media_type"])
def test_named_refusals_cost_one_more_call(client, graph_sandbox, style) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    graph_sandbox.refusal_style = style
    story = media_of(graph_sandbox, account, "STORY")
    client.settings.config.setdefault("metrics", {})["STORY"] = ["reach", "saved", "likes", "views"]
    graph_sandbox.reset_calls()
    result = client.media(account, story, "STORY")
    assert graph_sandbox.total_calls == (2 if style == "multi" else 3)  # multi names both at once
    assert result.unavailable == {"saved": "unsupported", "likes": "unsupported"} and result.metrics["reach"] > 0


@pytest.mark.parametrize(("n", "refused"), [(16, 1), (16, 2), (16, 3), (9, 2), (4, 1)])
def test_unattributed_refusals_are_found_by_halves_within_the_bound(client, graph_sandbox, n, refused) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    graph_sandbox.refusal_style = "anonymous"  # "(#100) Invalid parameter": names nothing
    story = media_of(graph_sandbox, account, "STORY")
    good = ["views", "reach", "shares", "total_interactions", "follows", "profile_visits", "profile_activity"]
    good += ["navigation", "replies", "reposts"] * 2  # repeated names are fine for the count
    bad = ["saved", "likes", "comments"][:refused]
    metrics = good[: n - refused]
    for i, name in enumerate(bad):  # spread over the list: first, middle, last
        metrics.insert([0, len(metrics) // 2, len(metrics)][i] if refused > 1 else n // 3, name)
    client.settings.config.setdefault("metrics", {})["STORY"] = metrics
    graph_sandbox.reset_calls()
    result = client.media(account, story, "STORY")
    extra = graph_sandbox.total_calls - 1 - refused  # beyond one call, and one per refusal were they named
    assert extra <= refused * math.ceil(math.log2(n))
    assert {m for m, why in result.unavailable.items() if why == "unsupported"} == set(bad)
    assert set(result.metrics) == set(good[: n - refused])


def test_a_code_100_that_no_metric_explains_is_raised_not_bisected_forever(client, graph_sandbox) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    child = next(m for m in graph_sandbox.data.media.values() if m.account_id == account and m.parent_id)
    graph_sandbox.reset_calls()
    with pytest.raises(graph.GraphError):  # album children have no insights whatever is asked
        client.media(account, child.id, "FEED", "IMAGE")
    n = len(metric_registry.configured(client.settings, "FEED", "IMAGE"))
    assert graph_sandbox.total_calls <= 1 + 2 * (math.ceil(math.log2(n)) + 1)  # two searches, then it gives up
    assert not client.redis.keys(contract.withdrawn_metrics("*", "*", "*"))


@pytest.mark.parametrize("login", ["instagram", "facebook"])
def test_facebook_login_metrics_only_under_facebook_login(tmp_path, redis, login) -> None:  # type: ignore[no-untyped-def]
    from igrelay.sandbox import Sandbox
    from tests.conftest import sandbox_settings

    with Sandbox(login_type=login, refusal_style="anonymous") as sb:
        settings = sandbox_settings(tmp_path, sb, IGRELAY_LOGIN_TYPE=login)
        account = sb.accounts[0]
        story, feed = media_of(sb, account, "STORY"), media_of(sb, account, "FEED")
        sb.advance(3 * 3600)  # the story has its viewers
        with new_session(2) as session:
            client = GraphClient(session, settings, redis)
            sb.reset_calls()
            story_result, feed_result = client.media(account, story, "STORY"), client.media(account, feed, "FEED")
        assert sb.total_calls == 2  # one call each: nothing Meta refuses on this host is asked
        assert ("link_clicks" in story_result.metrics) == (login == "facebook")
        assert ("total_views" in feed_result.metrics) == (login == "facebook")


def test_new_metrics_are_asked_on_every_served_version(tmp_path, redis, graph_sandbox) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import sandbox_settings

    settings = sandbox_settings(tmp_path, graph_sandbox, GRAPH_API_VERSION="v22.0")
    assert "reposts" in metric_registry.configured(settings, "FEED")
    assert {"reposts", "reels_skip_rate"} <= set(metric_registry.configured(settings, "REELS"))


def test_withdrawn_metric_is_dropped_remembered_and_reported(client, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    media_id = media_of(graph_sandbox, account, "REELS")
    graph_sandbox.withdraw_metric("reposts")
    graph_sandbox.reset_calls()
    first = client.media(account, media_id, "REELS")
    assert graph_sandbox.total_calls == 2
    assert first.unavailable["reposts"] == "unsupported" and first.metrics["views"] > 0
    assert redis.sismember(contract.withdrawn_metrics("v25.0", "REELS"), "reposts")
    graph_sandbox.reset_calls()
    second = client.media(account, media_id, "REELS")
    assert graph_sandbox.total_calls == 1 and second.unavailable["reposts"] == "unsupported"


def test_withdrawn_per_product_and_media_type(client, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    video = media_of(graph_sandbox, account, "FEED", "VIDEO")
    image = media_of(graph_sandbox, account, "FEED", "IMAGE")
    graph_sandbox.withdraw_metric("reposts")
    assert client.media(account, video, "FEED", "VIDEO").unavailable["reposts"] == "unsupported"
    assert redis.smembers(contract.withdrawn_metrics("v25.0", "FEED", "VIDEO")) == {b"reposts"}
    graph_sandbox._withdrawn.discard("reposts")  # it was that one post, not every FEED post
    graph_sandbox.reset_calls()
    assert "reposts" in client.media(account, image, "FEED", "IMAGE").metrics and graph_sandbox.total_calls == 1


def test_a_withdrawn_metric_is_probed_daily_and_comes_back(client, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    reel = media_of(graph_sandbox, account, "REELS")
    graph_sandbox.withdraw_metric("reposts")
    client.media(account, reel, "REELS", "VIDEO")
    graph_sandbox._withdrawn.discard("reposts")  # Meta serves it again
    graph_sandbox.reset_calls()
    assert client.media(account, reel, "REELS", "VIDEO").unavailable["reposts"] == "unsupported"  # within the day
    assert graph_sandbox.total_calls == 1
    probe = contract.metrics_probe("v25.0", "REELS", "VIDEO")
    assert 0 < redis.ttl(probe) <= metric_registry.PROBE_INTERVAL
    redis.delete(probe)  # a day later
    assert "reposts" in client.media(account, reel, "REELS", "VIDEO").metrics  # the probe asks, and it answers
    assert not redis.exists(contract.withdrawn_metrics("v25.0", "REELS", "VIDEO"))
    graph_sandbox.withdraw_metric("reposts")
    redis.delete(probe)
    graph_sandbox.reset_calls()
    assert client.media(account, reel, "REELS", "VIDEO").unavailable["reposts"] == "unsupported"
    assert graph_sandbox.total_calls == 2 and redis.ttl(probe) > 0  # a probe refused again: one call more, daily


def test_errors_are_classified_redacted_and_counted(client, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    token = graph_sandbox.token_for(account)
    media_id = media_of(graph_sandbox, account, "FEED")
    graph_sandbox.timeout_delay = 1.5
    for kind, cls in [
        ("5xx", graph.TransientError),
        ("throttle", graph.ThrottledError),
        ("timeout", graph.TransientError),
        ("expired_token", graph.AuthError),
    ]:
        graph_sandbox.fail_next(1, kind)
        with pytest.raises(cls) as caught:
            client.media(account, media_id, "FEED")
        assert token not in str(caught.value) and caught.value.__cause__ is None
    graph_sandbox.fail_next(1, "throttle")
    with pytest.raises(graph.ThrottledError) as caught:
        client.media(account, media_id, "FEED")
    assert caught.value.retry_after == 60  # the sandbox says 1 minute
    counted = redis.hgetall(contract.STATS)
    assert counted[stats.field("igrelay_graph_calls_total", outcome="throttled").encode()] == b"2"
    assert graph_sandbox.tokens_seen_in_url == 0


def test_terminal_answers(client, graph_sandbox) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    denied = graph_sandbox.add_media(account, "FEED", "IMAGE")
    graph_sandbox.deny_media(denied)
    cases = {
        graph_sandbox.add_media(account, "FEED", "IMAGE", pre_conversion=True): "pre_conversion",
        denied: "no_permission",  # code 10 for one media: that media, not the account's token
    }
    gone = graph_sandbox.add_media(account, "FEED", "IMAGE")
    graph_sandbox.delete_media(gone)
    cases[gone] = "gone"
    for media_id, reason in cases.items():
        with pytest.raises(graph.TerminalError) as caught:
            client.media(account, media_id, graph_sandbox.media(media_id).media_product_type)
        assert caught.value.reason == reason


def test_a_young_story_is_not_terminal(client, graph_sandbox) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    story = graph_sandbox.add_media(account, "STORY", "IMAGE", story_viewers=50)
    with pytest.raises(graph.TooFewViewers) as caught:  # no viewers yet, right after posting
        client.media(account, story, "STORY")
    assert not isinstance(caught.value, graph.TerminalError) and caught.value.reason == "not_enough_viewers"
    graph_sandbox.advance(3 * 3600)  # viewers come
    assert client.media(account, story, "STORY").metrics["reach"] >= 5


def test_refreshed_token_is_stored_and_preferred(client, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    old = graph_sandbox.token_for(account)
    graph_sandbox.reset_calls()
    new, lifetime = client.refresh_token(account)
    assert new != old and lifetime > 0
    # Meta's documented form: the token in the query of the refresh endpoint alone, no header
    assert [(r["path"], r["query"]) for r in graph_sandbox.requests_log] == [
        ("/refresh_access_token", {"grant_type": "ig_refresh_token", "access_token": "<redacted>"})
    ]
    stored = redis.hgetall(contract.token(account))
    assert b"token" not in stored and new.encode() not in stored[b"sealed"]
    assert client.token(account) == new
    graph_sandbox.reset_calls()
    client.describe(account, media_of(graph_sandbox, account, "FEED"))
    assert graph_sandbox.requests_log[-1]["auth"] and graph_sandbox.tokens_seen_in_url == 0


def test_account_insights_and_followers(client, graph_sandbox) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    result = client.account_insights(account, 1_764_000_000, 1_764_086_400)
    assert result.metrics["reach"] >= 0 and "views" in result.metrics
    assert client.followers_count(account) == graph_sandbox.data.accounts[account].followers_count


def test_listing_pages(client, graph_sandbox) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    nodes, _after = client.listing(account, "media")
    assert nodes and all(n["media_product_type"] in ("FEED", "REELS") for n in nodes)
    stories, _ = client.listing(account, "stories")
    assert stories and all(n["media_product_type"] == "STORY" for n in stories)


def test_no_token_is_an_auth_error(graph_settings, redis) -> None:  # type: ignore[no-untyped-def]
    with new_session() as session:
        with pytest.raises(graph.AuthError):
            GraphClient(session, graph_settings, redis).media("999", "1", "FEED")
