"""The sandbox is as strict as Meta where igrelay used to lose data: wordings, viewers, login types, days."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from igrelay.sandbox import Sandbox, demo_data

V = "v25.0"


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(demo_data(2, history=10)) as sandbox:
        yield sandbox


@pytest.fixture
def fb() -> Iterator[Sandbox]:
    with Sandbox(demo_data(2, history=10, login_type="facebook"), login_type="facebook") as sandbox:
        yield sandbox


def call(sb: Sandbox, path: str, account: str | None = None, method: str = "GET", **params: object):
    token = sb.token_for(account or sb.accounts[0])
    headers = {"Authorization": f"Bearer {token}"}
    return requests.request(method, f"{sb.url}/{V}/{path}", params=params, headers=headers, timeout=5)


def error_of(response: requests.Response) -> dict:
    assert response.status_code >= 400
    return response.json()["error"]


def old_story(sb: Sandbox, hours: float = 3) -> str:
    return sb.add_media(sb.accounts[0], "STORY", timestamp=datetime.now(UTC) - timedelta(hours=hours))


# 1. refusal wordings ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("style", "message"),
    [
        ("single", "(#100) The Media Insights API does not support the saved metric for this media product type"),
        ("multi", "(#100) The Media Insights API does not support the saved, likes metric for this media product type"),
        ("media_type", "The metric saved is not supported for this media type"),
        ("anonymous", "(#100) Invalid parameter"),
    ],
)
def test_refusal_styles(sb, style, message):
    sb.refusal_style = style
    error = error_of(call(sb, f"{old_story(sb)}/insights", metric="reach,saved,likes"))
    assert (error["code"], error["message"]) == (100, message)


def test_mixed_refusals_are_deterministic_and_varied(sb):
    story = old_story(sb)
    requests_ = [
        f"reach,saved,{extra}" for extra in ("likes", "comments", "views", "shares", "ig_reels_avg_watch_time")
    ]
    requests_ += [f"saved,{extra}" for extra in ("reach", "views", "shares", "likes", "replies", "navigation")]
    first = [error_of(call(sb, f"{story}/insights", metric=m))["message"] for m in requests_]
    again = [error_of(call(sb, f"{story}/insights", metric=m))["message"] for m in requests_]
    assert first == again
    assert any("Invalid parameter" in m for m in first) and any("does not support" in m for m in first)


# 2. story viewers grow -----------------------------------------------------------------------------
def test_story_viewers_grow_with_the_clock(sb):
    story = sb.add_media(sb.accounts[0], "STORY", story_viewers=100)
    error = error_of(call(sb, f"{story}/insights", metric="reach,views"))
    assert (error["code"], error["message"]) == (10, "(#10) Not enough viewers for the media to show insights")
    assert error["type"] == "OAuthException"
    sb.advance(30 * 60)
    reach = call(sb, f"{story}/insights", metric="reach").json()["data"][0]["values"][0]["value"]
    sb.advance(60 * 60)
    later = call(sb, f"{story}/insights", metric="reach").json()["data"][0]["values"][0]["value"]
    assert 5 <= reach < later <= 100


# 3. media-scoped code 10 ---------------------------------------------------------------------------
def test_permission_denied_is_per_media(sb):
    account = sb.accounts[0]
    denied, other = sb.add_media(account), sb.add_media(account)
    sb.deny_media(denied)
    error = error_of(call(sb, f"{denied}/insights", metric="reach"))
    assert (error["code"], error["message"]) == (10, "(#10) Application does not have permission for this action")
    assert call(sb, f"{other}/insights", metric="reach").status_code == 200
    assert call(sb, "me", fields="user_id").status_code == 200


# 4. login-type metrics -----------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["link_clicks", "total_views"])
def test_facebook_login_only_metrics(sb, fb, metric):
    sb.refusal_style = "single"
    error = error_of(call(sb, f"{old_story(sb)}/insights", metric=f"reach,{metric}"))
    assert error["code"] == 100 and metric in error["message"]
    answer = call(fb, f"{old_story(fb)}/insights", metric=f"reach,{metric}")
    assert [item["name"] for item in answer.json()["data"]] == ["reach", metric]


def test_total_likes_and_comments_on_facebook_login(sb, fb):
    media = fb.add_media(fb.accounts[0])
    names = [i["name"] for i in call(fb, f"{media}/insights", metric="total_likes,total_comments").json()["data"]]
    assert names == ["total_likes", "total_comments"]
    assert call(sb, f"{sb.add_media(sb.accounts[0])}/insights", metric="total_likes").status_code == 400


@pytest.mark.parametrize("version", ["v22.0", "v23.0", V])
def test_newer_metrics_on_every_version(sb, version):
    reel = sb.add_media(sb.accounts[0], "REELS", "VIDEO")
    headers = {"Authorization": f"Bearer {sb.token_for(sb.accounts[0])}"}
    url = f"{sb.url}/{version}/{reel}/insights"
    answer = requests.get(url, params={"metric": "reposts,reels_skip_rate"}, headers=headers, timeout=5)
    assert [item["name"] for item in answer.json()["data"]] == ["reposts", "reels_skip_rate"]


def test_login_type_is_a_constructor_option():
    with pytest.raises(ValueError):
        Sandbox(login_type="twitter")
    assert Sandbox().login_type == "instagram"


# 5. user_id vs id ----------------------------------------------------------------------------------
def test_instagram_login_me_has_a_different_id(sb):
    account = sb.accounts[0]
    me = call(sb, "me", fields="id,user_id,username").json()
    assert me["user_id"] == account and me["id"] != account and me["id"] == sb.data.accounts[account].app_scoped_id
    assert call(sb, f"{account}/media", limit=1).json()["data"]
    assert call(sb, f"{me['id']}/media", limit=1).json()["data"]


def test_facebook_login_ig_user_has_no_user_id(fb):
    account = fb.accounts[0]
    assert call(fb, account, fields="id,username").json()["id"] == account
    assert error_of(call(fb, account, fields="user_id"))["code"] == 100
    assert call(fb, "me").json()["id"] == fb.data.accounts[account].page_id  # /me with a Page token is the Page


# 6. account insights -------------------------------------------------------------------------------
def _insights(sb, **params):
    return call(sb, f"{sb.accounts[0]}/insights", **params)


@pytest.mark.parametrize(
    ("until", "hour"),
    [(datetime(2026, 7, 10, 12, tzinfo=UTC), "07"), (datetime(2026, 1, 10, 12, tzinfo=UTC), "08")],
)
def test_days_end_at_pacific_midnight(sb, until, hour):
    stamp = int(until.timestamp())
    body = _insights(sb, metric="follower_count", period="day", since=stamp - 3 * 86400, until=stamp).json()
    ends = [v["end_time"] for v in body["data"][0]["values"]]
    assert len(ends) == 3 and all(e.endswith(f"T{hour}:00:00+0000") for e in ends)


def test_media_product_type_and_follow_type_values(sb):
    body = _insights(sb, metric="likes", period="day", metric_type="total_value", breakdown="media_product_type")
    values = {r["dimension_values"][0] for r in body.json()["data"][0]["total_value"]["breakdowns"][0]["results"]}
    assert values == {"POST", "REEL", "STORY", "AD", "CAROUSEL_CONTAINER"}
    body = _insights(
        sb, metric="follows_and_unfollows", period="day", metric_type="total_value", breakdown="follow_type"
    )
    total = body.json()["data"][0]["total_value"]
    assert [r["dimension_values"] for r in total["breakdowns"][0]["results"]] == [["FOLLOWER"], ["NON_FOLLOWER"]]
    assert total["value"] == sum(r["value"] for r in total["breakdowns"][0]["results"])
    body = _insights(
        sb, metric="profile_links_taps", period="day", metric_type="total_value", breakdown="contact_button_type"
    )
    results = body.json()["data"][0]["total_value"]["breakdowns"][0]["results"]
    assert ["INSTANT_EXPERIENCE"] in [r["dimension_values"] for r in results]


def test_wrong_breakdown_is_metas_unknown_error(sb):
    response = _insights(sb, metric="reach", period="day", metric_type="total_value", breakdown="contact_button_type")
    error = error_of(response)
    assert (response.status_code, error["code"], error["message"]) == (500, 1, "An unknown error has occurred.")


def test_time_series_leaves_breakdowns_out(sb):
    body = _insights(sb, metric="reach", period="day", metric_type="time_series", breakdown="media_product_type")
    item = body.json()["data"][0]
    assert item["values"] and "total_value" not in item


def test_demographics_need_timeframe_and_lifetime(sb):
    base = {"metric": "follower_demographics", "metric_type": "total_value", "breakdown": "country"}
    assert error_of(_insights(sb, period="lifetime", **base))["message"] == "(#100) The parameter timeframe is required"
    assert "period=lifetime" in error_of(_insights(sb, period="day", timeframe="this_month", **base))["message"]
    for metric in ("follower_demographics", "engaged_audience_demographics"):
        for breakdown in ("age", "city", "country", "gender"):
            params = {**base, "metric": metric, "breakdown": breakdown}
            item = _insights(sb, period="lifetime", timeframe="this_week", **params).json()["data"][0]
            group = item["total_value"]["breakdowns"][0]
            assert group["dimension_keys"] == [breakdown] and group["results"]
    both = _insights(sb, period="lifetime", timeframe="this_month", **{**base, "breakdown": "age,gender"}).json()
    assert both["data"][0]["total_value"]["breakdowns"][0]["dimension_keys"] == ["age", "gender"]


def test_online_followers_and_follower_count(sb):
    online = _insights(sb, metric="online_followers", period="lifetime").json()["data"][0]
    assert set(online["values"][0]["value"]) == {str(h) for h in range(24)}
    count = _insights(sb, metric="follower_count", period="day").json()["data"][0]
    assert isinstance(count["values"][0]["value"], int)


@pytest.mark.parametrize(
    ("product", "metric", "breakdown", "values"),
    [
        (
            "STORY",
            "navigation",
            "story_navigation_action_type",
            {"tap_forward", "tap_back", "tap_exit", "swipe_forward"},
        ),
        (
            "FEED",
            "profile_activity",
            "action_type",
            {"BIO_LINK_CLICKED", "CALL", "DIRECTION", "EMAIL", "OTHER", "TEXT"},
        ),
    ],
)
def test_media_breakdowns(sb, product, metric, breakdown, values):
    age = timedelta(hours=3) if product == "STORY" else timedelta(days=3)  # a story lives 24 h
    media = sb.add_media(sb.accounts[0], product, timestamp=datetime.now(UTC) - age)
    item = call(sb, f"{media}/insights", metric=metric, breakdown=breakdown).json()["data"][0]
    group = item["total_value"]["breakdowns"][0]
    assert group["dimension_keys"] == [breakdown] and {r["dimension_values"][0] for r in group["results"]} <= values
    assert sum(r["value"] for r in group["results"]) == item["total_value"]["value"]


# 7. tokens -----------------------------------------------------------------------------------------
def _refresh(sb, token, header=False):
    params = {"grant_type": "ig_refresh_token"} | ({} if header else {"access_token": token})
    headers = {"Authorization": f"Bearer {token}"} if header else {}
    return requests.get(f"{sb.url}/refresh_access_token", params=params, headers=headers, timeout=5)


def test_refresh_rules(sb):
    account = sb.accounts[0]
    young = sb.issue_token(account, age=3600)
    error = error_of(_refresh(sb, young))
    assert error["code"] == 100 and "24 hours" in error["message"] and error["type"] == "IGApiException"
    old = sb.issue_token(account, age=2 * 86400)
    assert error_of(_refresh(sb, old, header=True))["code"] == 104  # only the documented query form
    fresh = _refresh(sb, old).json()
    assert fresh["expires_in"] == 5_184_000 and error_of(_refresh(sb, fresh["access_token"]))["code"] == 100
    sb.advance(61 * 86400)
    error = error_of(_refresh(sb, old))
    assert (error["code"], error["error_subcode"]) == (190, 463)
    assert error_of(call(sb, "me"))["code"] == 190  # the demo token expired with the clock too


# 8. subscribed_apps on a Page ----------------------------------------------------------------------
def test_page_subscribed_apps_lists_every_app(fb):
    account = fb.data.accounts[fb.accounts[0]]
    apps = call(fb, f"{account.page_id}/subscribed_apps").json()["data"]
    assert [app["name"] for app in apps] == ["Another CRM"]
    posted = call(fb, f"{account.page_id}/subscribed_apps", method="POST", subscribed_fields="feed,messages")
    assert posted.json() == {"success": True}
    apps = call(fb, f"{account.page_id}/subscribed_apps").json()["data"]
    assert len(apps) == 2 and set(apps[0]) == {"category", "link", "name", "id", "subscribed_fields"}
    ours = next(app for app in apps if app["id"] == "1000000000000001")
    assert ours["subscribed_fields"] == ["feed", "messages"]


def test_instagram_login_cannot_subscribe_story_insights_or_mentions(sb):
    for name in ("story_insights", "mentions"):
        assert error_of(call(sb, "me/subscribed_apps", method="POST", subscribed_fields=name))["code"] == 100


# 10. months of media -------------------------------------------------------------------------------
def test_demo_accounts_have_months_of_paged_media():
    with Sandbox() as sb:
        url, params, seen = f"{sb.url}/{V}/me/media", {"fields": "id,timestamp", "limit": 100}, []
        headers = {"Authorization": f"Bearer {sb.token_for(sb.accounts[0])}"}
        while url:
            body = requests.get(url, params=params, headers=headers, timeout=5).json()
            seen += body["data"]
            url, params = body["paging"].get("next"), None
        assert len(seen) == 244 and len({m["id"] for m in seen}) == 244
        oldest = datetime.strptime(seen[-1]["timestamp"], "%Y-%m-%dT%H:%M:%S%z")
        assert datetime.now(UTC) - oldest > timedelta(days=150)


def test_benchmark_account_with_many_media(sb):
    account = sb.accounts[1]
    sb.add_history(account, 2000, days=365)
    count = call(sb, "me", account=account, fields="media_count").json()["media_count"]
    assert count == 2000 + 4 + 10
    assert json.loads(call(sb, "me/media", account=account, limit=100).headers["X-App-Usage"])
