"""The sandbox Graph API answers with Meta's shapes, errors and headers: nodes, insights, pagination, tokens,
subscriptions, error codes, usage headers."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from igrelay.sandbox import Sandbox, demo_data

V = "v25.0"
META_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000")


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def account(sb: Sandbox) -> str:
    return sb.accounts[0]


@pytest.fixture
def http(sb: Sandbox, account: str) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {sb.token_for(account)}"
        yield session


def get(sb: Sandbox, http: requests.Session, path: str, **params: object) -> requests.Response:
    return http.get(f"{sb.url}/{V}/{path}", params=params, timeout=5)


def error_of(response: requests.Response) -> dict:
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["fbtrace_id"]
    return body["error"]


def media_of(sb: Sandbox, account: str, product: str, kind: str | None = None) -> str:
    return next(
        m.id
        for m in sb.data.media.values()
        if m.account_id == account
        and m.media_product_type == product
        and not m.parent_id
        and (kind is None or m.media_type == kind)
        and m.story_viewers >= 5
    )


# media node and /insights -------------------------------------------------------------------------
def test_media_node_expands_fields_and_insights(sb, http, account):
    media_id = media_of(sb, account, "FEED", "IMAGE")
    fields = "media_type,media_product_type,permalink,timestamp,like_count,username,insights.metric(reach,saved)"
    body = get(sb, http, media_id, fields=fields).json()
    assert body["id"] == media_id and body["media_type"] == "IMAGE" and body["media_product_type"] == "FEED"
    assert META_TIME.fullmatch(body["timestamp"]) and body["permalink"].startswith("https://www.instagram.com/p/")
    reach, saved = body["insights"]["data"]
    assert reach == {
        "name": "reach",
        "period": "lifetime",
        "values": [{"value": reach["values"][0]["value"]}],
        "title": "Accounts reached",
        "description": reach["description"],
        "id": f"{media_id}/insights/reach/lifetime",
    }
    assert saved["name"] == "saved" and isinstance(saved["values"][0]["value"], int)


def test_metrics_follow_the_media_product_type(sb, http, account):
    image, reel = media_of(sb, account, "FEED", "IMAGE"), media_of(sb, account, "REELS")
    assert get(sb, http, f"{image}/insights", metric="saved,follows,views").status_code == 200
    rejected = get(sb, http, f"{reel}/insights", metric="views,follows")
    assert rejected.status_code == 400
    assert error_of(rejected)["message"] == (
        "(#100) The Media Insights API does not support the follows metric for this media product type"
    )
    skip = get(sb, http, f"{reel}/insights", metric="reels_skip_rate").json()["data"][0]
    assert isinstance(skip["values"][0]["value"], float)


def test_deprecated_metrics_get_metas_code_100(sb, http, account):
    image = media_of(sb, account, "FEED", "IMAGE")
    error = error_of(get(sb, http, f"{image}/insights", metric="reach,video_views"))
    assert error["code"] == 100 and error["type"] == "IGApiException"  # graph.instagram.com's type
    assert error["message"].startswith("(#100) metric[1] must be one of the following values: impressions, reach")
    impressions = error_of(get(sb, http, f"{image}/insights", metric="impressions"))["message"]
    assert impressions.startswith("(#100) Starting from version v22.0 and above, the impressions metric")


def test_one_bad_metric_fails_the_whole_listing(sb, http, account):
    response = get(sb, http, f"{account}/media", fields="id,insights.metric(reach,follows)")
    assert response.status_code == 400 and error_of(response)["code"] == 100


def test_facebook_views_needs_the_media_shared_to_facebook(sb, http, account):
    plain = sb.add_media(account, "REELS", "VIDEO")
    shared = sb.add_media(account, "REELS", "VIDEO", shared_to_facebook=True)
    assert error_of(get(sb, http, f"{plain}/insights", metric="facebook_views"))["code"] == 100
    assert get(sb, http, f"{shared}/insights", metric="facebook_views,crossposted_views").status_code == 200


def test_media_posted_before_conversion(sb, http, account):
    old = sb.add_media(account, timestamp=datetime(2023, 1, 5, tzinfo=UTC), pre_conversion=True)
    error = error_of(get(sb, http, f"{old}/insights", metric="reach"))
    assert (error["code"], error["error_subcode"], error["is_transient"]) == (100, 2108006, False)
    assert error["error_user_title"] == "Media Posted Before Business Account Conversion"


def test_deleted_and_foreign_media_are_100_33(sb, http, account):
    media_id = sb.add_media(account)
    sb.delete_media(media_id)
    foreign = media_of(sb, sb.accounts[1], "FEED", "IMAGE")
    for target in (media_id, foreign):
        error = error_of(get(sb, http, target, fields="id"))
        assert (error["code"], error["error_subcode"], error["type"]) == (100, 33, "IGApiException")
        assert f"Object with ID '{target}' does not exist" in error["message"]


def test_story_insights_need_five_viewers_and_expire(sb, http, account):
    few = sb.add_media(account, "STORY", story_viewers=3)
    error = error_of(get(sb, http, f"{few}/insights", metric="reach"))
    assert (error["code"], error["type"]) == (10, "OAuthException")
    assert error["message"] == "(#10) Not enough viewers for the media to show insights"
    live = sb.add_media(account, "STORY", timestamp=datetime.now(UTC) - timedelta(hours=3))
    assert get(sb, http, f"{live}/insights", metric="reach,navigation,replies").json()["data"]
    sb.advance(25 * 3600)
    assert get(sb, http, f"{live}/insights", metric="reach").json() == {"data": []}


def test_carousel_children_have_no_insights(sb, http, account):
    album = sb.add_media(account, media_type="CAROUSEL_ALBUM")
    children = get(sb, http, album, fields="children{id,media_type}").json()["children"]["data"]
    assert [c["media_type"] for c in children] == ["IMAGE", "VIDEO"]
    assert error_of(get(sb, http, f"{children[0]['id']}/insights", metric="reach"))["code"] == 100


def test_breakdown_carries_total_value(sb, http, account):
    story = sb.add_media(account, "STORY", timestamp=datetime.now(UTC) - timedelta(hours=3))
    item = get(sb, http, f"{story}/insights", metric="navigation", breakdown="story_navigation_action_type").json()[
        "data"
    ][0]
    total = item["total_value"]
    results = total["breakdowns"][0]["results"]
    assert total["breakdowns"][0]["dimension_keys"] == ["story_navigation_action_type"]
    assert sum(r["value"] for r in results) == total["value"] == item["values"][0]["value"]
    assert error_of(get(sb, http, f"{story}/insights", metric="reach", breakdown="action_type"))["code"] == 1


def test_empty_metrics_answer_empty_data(sb, http, account):
    sb.empty_metrics = {"saved"}
    media_id = sb.add_media(account)
    assert get(sb, http, f"{media_id}/insights", metric="saved").json() == {"data": []}
    assert "insights" not in get(sb, http, media_id, fields="insights.metric(saved)").json()


# listings ------------------------------------------------------------------------------------------
def test_media_pages_newest_first_without_stories(account):
    with Sandbox(demo_data(2, history=0)) as sb, requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {sb.token_for(account)}"
        _pages_newest_first(sb, http, account)


def _pages_newest_first(sb, http, account):
    for hours in range(5):
        sb.add_media(account, timestamp=datetime.now(UTC) - timedelta(hours=100 + hours))
    url, params, seen = f"{sb.url}/{V}/me/media", {"fields": "id,timestamp,media_product_type", "limit": 3}, []
    while url:
        body = http.get(url, params=params, timeout=5).json()
        seen += body["data"]
        url, params = body["paging"].get("next"), None
        assert url is None or "access_token" not in url
    stamps = [item["timestamp"] for item in seen]
    assert stamps == sorted(stamps, reverse=True) and len(seen) == 9
    assert {item["media_product_type"] for item in seen} == {"FEED", "REELS"}


def test_stories_lists_only_the_last_24_hours(sb, http, account):
    old = sb.add_media(account, "STORY", timestamp=datetime.now(UTC) - timedelta(hours=30))
    body = get(sb, http, f"{account}/stories", fields="id,media_product_type").json()
    ids = [item["id"] for item in body["data"]]
    assert len(ids) == 2 and old not in ids and body["paging"]["cursors"]["after"]


def test_user_node(sb, http, account):
    body = get(sb, http, "me", fields="id,user_id,username,followers_count,media_count").json()
    assert body["user_id"] == account and body["id"] != account  # Instagram Login: id is app-scoped
    assert body["media_count"] == 4 + 240  # the recent demo media and six months of history
    for node in (account, body["id"]):  # both ids name the account, as on graph.instagram.com
        assert get(sb, http, node, fields="user_id").json()["user_id"] == account
    assert error_of(get(sb, http, "me", fields="nope"))["code"] == 100


# account insights ----------------------------------------------------------------------------------
def test_account_insights_shapes_and_window(sb, http, account):
    until = int(datetime.now(UTC).timestamp())
    body = get(
        sb,
        http,
        f"{account}/insights",
        metric="reach,follower_count",
        period="day",
        metric_type="total_value",
        since=until - 3 * 86400,
        until=until,
    ).json()
    reach, followers = body["data"]
    assert reach["total_value"]["value"] >= 0 and reach["id"] == f"{account}/insights/reach/day"
    assert len(followers["values"]) == 3 and META_TIME.fullmatch(followers["values"][0]["end_time"])
    too_long = error_of(
        get(
            sb,
            http,
            f"{account}/insights",
            metric="reach",
            period="day",
            metric_type="total_value",
            since=until - 31 * 86400,
            until=until,
        )
    )
    assert too_long["message"] == ("(#100) There cannot be more than 30 days (2592000 s) between since and until")
    gone = error_of(get(sb, http, f"{account}/insights", metric="impressions", period="day"))
    assert gone["code"] == 100 and "must be one of" in gone["message"]


# tokens and subscriptions --------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["", f"/{V}"])
def test_refresh_access_token(sb, account, prefix):
    old = sb.token_for(account)
    with requests.Session() as session:
        answer = session.get(
            f"{sb.url}{prefix}/refresh_access_token",
            params={"grant_type": "ig_refresh_token", "access_token": old},
            timeout=5,
        ).json()
        assert answer["token_type"] == "bearer" and answer["expires_in"] == 5184000
        for token in (old, answer["access_token"]):
            me = session.get(f"{sb.url}/{V}/me", headers={"Authorization": f"Bearer {token}"}, timeout=5)
            assert me.status_code == 200
    assert sb.calls["refresh_token"] == 1


def test_expired_token(sb, http, account):
    sb.expire_token(account)
    token = sb.token_for(account)
    for path in ("me", f"refresh_access_token?grant_type=ig_refresh_token&access_token={token}"):
        error = error_of(get(sb, http, path))
        assert (error["code"], error["error_subcode"], error["type"]) == (190, 463, "OAuthException")


def test_invalid_and_missing_tokens(sb):
    with requests.Session() as session:
        bad = session.get(f"{sb.url}/{V}/me", headers={"Authorization": "Bearer nope"}, timeout=5)
        assert error_of(bad)["message"] == "Invalid OAuth access token - Cannot parse access token"
        assert error_of(session.get(f"{sb.url}/{V}/me", timeout=5))["code"] == 104


def test_subscribed_apps_round_trip(sb, http, account):
    assert get(sb, http, "me/subscribed_apps").json() == {"data": []}
    posted = http.post(f"{sb.url}/{V}/me/subscribed_apps", params={"subscribed_fields": "comments,messages"}, timeout=5)
    assert posted.json() == {"success": True}
    listed = get(sb, http, f"{account}/subscribed_apps").json()
    assert listed == {"data": [{"subscribed_fields": ["comments", "messages"]}]}
    bad = http.post(f"{sb.url}/{V}/me/subscribed_apps", data={"subscribed_fields": "feed"}, timeout=5)
    assert error_of(bad)["code"] == 100


def test_unknown_path(sb, http):
    error = error_of(http.get(f"{sb.url}/me/media", timeout=5))
    assert error["code"] == 2500 and error["message"].startswith("Unknown path components")


# faults, switches, counters ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("5xx", 500, 2),
        ("throttle", 400, 80002),
        ("throttle_app", 400, 4),
        ("expired_token", 400, 190),
        ("unknown", 500, 1),
    ],
)
def test_fail_next(sb, http, kind, status, code):
    sb.fail_next(2, kind, route="me")
    assert get(sb, http, f"{sb.accounts[0]}").status_code == 200  # another route
    for _ in range(2):
        response = get(sb, http, "me")
        assert (response.status_code, error_of(response)["code"]) == (status, code)
    assert get(sb, http, "me").status_code == 200
    if kind == "5xx":
        assert response.json()["error"]["is_transient"] is True
    if kind == "throttle":
        usage = json.loads(response.headers["X-Business-Use-Case-Usage"])[sb.accounts[0]][0]
        assert usage["estimated_time_to_regain_access"] == 1 and usage["type"] == "instagram"
    if kind == "throttle_app":
        assert json.loads(response.headers["X-App-Usage"])["call_count"] == 100


def test_fail_next_timeout(sb, http):
    sb.timeout_delay = 0.5
    sb.fail_next(1, "timeout")
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.get(f"{sb.url}/{V}/me", timeout=0.1)
    assert get(sb, http, "me").status_code == 200


def test_withdraw_metric(sb, http, account):
    media_id = media_of(sb, account, "FEED", "IMAGE")
    sb.withdraw_metric("saved")
    error = error_of(get(sb, http, f"{media_id}/insights", metric="reach,saved"))
    assert error["message"].startswith("(#100) metric[1] must be one of the following values:")
    assert "saved" not in error["message"].split(":", 1)[1].split(", ")


def test_counters_log_and_usage_headers(sb, http, account):
    sb.usage_budget = 10
    first = get(sb, http, "me")
    get(sb, http, f"{account}/media")
    with requests.Session() as session:
        session.get(f"{sb.url}/{V}/me", params={"access_token": sb.token_for(account)}, timeout=5)
    later = get(sb, http, "me")
    assert sb.calls == {"me": 3, "user_media": 1} and sb.total_calls == 4 and sb.tokens_seen_in_url == 1
    assert sb.requests_log[2]["query"] == {"access_token": "<redacted>"}
    assert all(entry["auth"] for entry in sb.requests_log)
    usage = [json.loads(r.headers["X-Business-Use-Case-Usage"])[account][0]["call_count"] for r in (first, later)]
    assert usage[0] < usage[1] and "X-App-Usage" in later.headers
    sb.reset_calls()
    assert sb.total_calls == 0 and sb.tokens_seen_in_url == 0 and not sb.requests_log


def test_demo_data_has_every_media_type():
    data = demo_data()
    kinds = {(m.media_product_type, m.media_type) for m in data.media.values() if not m.parent_id}
    assert len(data.accounts) == 2
    assert kinds == {
        ("FEED", "IMAGE"),
        ("FEED", "CAROUSEL_ALBUM"),
        ("FEED", "VIDEO"),
        ("REELS", "VIDEO"),
        ("STORY", "IMAGE"),
        ("STORY", "VIDEO"),
    }


def test_command_line_serves_until_sigterm():
    command = [sys.executable, "-m", "igrelay.sandbox", "--port", "0", "--accounts", "1"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        line = proc.stdout.readline().strip()
        url = line.removeprefix("sandbox Graph API on ")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        with requests.Session() as session:
            headers = {"Authorization": "Bearer IGAAsandbox17841400000000001"}
            assert session.get(f"{url}/{V}/me", headers=headers, timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
