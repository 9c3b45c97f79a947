"""The console through Flask's test client: off by default, sessions, CSRF, slowed-down logins, pages."""

from __future__ import annotations

import pytest

from config import contract
from tests.conftest import make_settings
from tests.support.console import ACCOUNT, MEDIA, PASSWORD, console_env, csrf, insights, login, store
from webhook import create_app

PAGES = [
    "/console",
    "/console/",
    "/console/overview.frag",
    "/console/accounts",
    f"/console/accounts/{ACCOUNT}",
    f"/console/media/{MEDIA}",
    "/console/activity",
    "/console/activity.frag",
    "/console/sinks",
    "/console/failures",
    "/console/failures/replay",
    "/console/logout",
]
ACTIONS = [
    f"/console/accounts/{ACCOUNT}/pause",
    f"/console/accounts/{ACCOUNT}/resume",
    "/console/sinks/x/enable",
    "/console/failures/replay",
    "/console/logout",
]


@pytest.fixture
def console(tmp_path, redis):
    settings = make_settings(tmp_path, **console_env(tmp_path))
    return settings, create_app(settings, redis=redis)


@pytest.fixture
def browser(console):
    return console[1].test_client()


def test_off_without_a_password(client):
    for path in ("/console", "/console/login", "/console/static/console.css"):
        assert client.get(path).status_code == 404
    assert not any(rule.rule.startswith("/console") for rule in client.application.url_map.iter_rules())


def test_pages_need_a_session(browser):
    for path in PAGES:
        answer = browser.get(path)
        assert answer.status_code in (302, 401), path
        if answer.status_code == 302:
            assert answer.headers["Location"].startswith("/console/login")


def test_actions_need_a_session_and_csrf(browser):
    for path in ACTIONS:
        assert browser.post(path).status_code in (400, 403), path  # no token at all
    browser.get("/console/login")  # an anonymous session with a token
    with browser.session_transaction("/console") as session:
        token = session["csrf"]
    for path in ACTIONS[:-1]:
        assert browser.post(path, data={"csrf_token": token}).status_code == 401, path


def test_login_needs_csrf(browser):
    assert browser.post("/console/login", data={"password": PASSWORD}).status_code == 400
    browser.get("/console/login")
    assert browser.post("/console/login", data={"password": PASSWORD, "csrf_token": "forged"}).status_code == 403


def test_login_session_cookie_and_logout(browser):
    answer = login(browser)
    assert answer.status_code == 302 and answer.headers["Location"] == "/console"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here
    page = browser.get("/console/")
    assert page.status_code == 200 and b"Overview" in page.data
    assert browser.post("/console/logout", data={}).status_code == 400  # no CSRF token
    token = csrf(page.get_data(as_text=True))
    assert browser.post("/console/logout", data={"csrf_token": token}).status_code == 302
    assert browser.get("/console/").status_code == 302


def test_secure_cookie_and_client_address_through_one_proxy(browser, redis):
    behind = {"headers": {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}}
    answer = login(browser, **behind)
    assert "Secure" in answer.headers["Set-Cookie"]
    login(browser, password="wrong", **behind)
    assert redis.get(contract.console_login_failures("203.0.113.7")) == b"1"


def test_the_session_is_renewed_at_login(browser):
    browser.get("/console/login")
    with browser.session_transaction("/console") as session:
        before = session["csrf"]
    login(browser)
    with browser.session_transaction("/console") as session:
        assert session["csrf"] != before


def test_failed_logins_are_slowed_down(browser, redis):
    for _ in range(10):
        assert login(browser, password="wrong").status_code == 401
    assert login(browser, password="wrong").status_code == 429
    assert login(browser).status_code == 429  # even the right password, until the minute is over
    redis.delete(contract.console_login_failures("127.0.0.1"))
    assert login(browser).status_code == 302


def test_changing_the_password_ends_sessions(tmp_path, redis, console):
    settings, app = console
    client = app.test_client()
    login(client)
    other = create_app(make_settings(tmp_path, **console_env(tmp_path, IGRELAY_CONSOLE_PASSWORD="new")), redis=redis)
    cookie = client.get_cookie("igrelay_console", path="/console")
    fresh = other.test_client()
    fresh.set_cookie("igrelay_console", cookie.value, path="/console")
    assert fresh.get("/console/").status_code == 302


def test_webhook_keeps_no_session(browser):
    answer = browser.get("/webhook?hub.mode=subscribe&hub.verify_token=x&hub.challenge=1")
    assert "Set-Cookie" not in answer.headers


def test_every_page_renders_with_history(console, browser, redis):
    settings, _app = console
    store(settings, insights(5))
    login(browser)
    for path in PAGES[:-2]:
        answer = browser.get(path)
        assert answer.status_code == 200, path
        assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    media = browser.get(f"/console/media/{MEDIA}").get_data(as_text=True)
    views = media.split('data-chart="views"')[1].split("</svg>")[0]
    assert views.count('class="pt"') == 5  # one point per stored record
    assert "saved" in media and "not available" in media
    account = browser.get(f"/console/accounts/{ACCOUNT}").get_data(as_text=True)
    assert f"/console/media/{MEDIA}" in account and "1,070" in account  # the latest views


def test_pages_without_a_sql_sink_say_how_to_add_one(tmp_path, redis):
    env = console_env(tmp_path, IGRELAY_SINKS=f"file://{tmp_path}/r.jsonl")
    client = create_app(make_settings(tmp_path, **env), redis=redis).test_client()
    login(client)
    for path in (f"/console/accounts/{ACCOUNT}", f"/console/media/{MEDIA}", "/console/activity"):
        assert b"No SQL sink is configured" in client.get(path).data


def test_activity_filters(console, browser):
    settings, _app = console
    store(settings, insights(2) + insights(1, media="18000000000000009", account="17841400000000002"))
    login(browser)
    page = browser.get("/console/activity.frag?account=17841400000000002").get_data(as_text=True)
    assert "18000000000000009" in page and MEDIA not in page
    assert browser.get("/console/activity?account=abc").status_code == 400


def test_pause_and_resume(browser, redis):
    login(browser)
    token = csrf(browser.get("/console/accounts").get_data(as_text=True))
    paused = browser.post(f"/console/accounts/{ACCOUNT}/pause", data={"csrf_token": token, "for": "1h"})
    assert paused.status_code == 302
    assert 3500 < redis.ttl(contract.paused_until(ACCOUNT)) <= 3600
    assert b"paused until" in browser.get("/console/accounts").data
    browser.post(f"/console/accounts/{ACCOUNT}/resume", data={"csrf_token": token})
    assert not redis.exists(contract.paused_until(ACCOUNT))


def test_unknown_ids_are_404(browser):
    login(browser)
    assert browser.get("/console/accounts/abc").status_code == 404
    assert browser.get("/console/media/x;drop").status_code == 404


def test_secret_key_is_required(tmp_path, redis):
    from config.settings import ConfigError

    env = console_env(tmp_path, IGRELAY_SECRET_KEY="")
    with pytest.raises(ConfigError, match="IGRELAY_SECRET_KEY"):
        create_app(make_settings(tmp_path, **env), redis=redis)


def test_per_minute_series_from_snapshots(redis, monkeypatch):
    from types import SimpleNamespace

    from config import stats

    now = 1_800_000_000.0
    minute = int(now // 60)
    redis.hset(contract.STATS_MINUTES, mapping={minute - 2: "10 4", minute - 1: "25 10", minute: "27 13"})
    redis.hset(contract.STATS, mapping={stats.DELIVERIES: 30, stats.field(stats.RECORDS, kind="a"): 14})
    series = stats.per_minute(redis, minutes=3, now=now)
    assert series == [(minute - 3, None, None), (minute - 2, 15, 6), (minute - 1, 2, 3)]
    # One snapshot per minute; the clock stands still, so both calls fall in one minute (the next one).
    monkeypatch.setattr(stats.time, "time", lambda: now + 60)
    assert stats.snapshot_minute(SimpleNamespace(redis=redis)) == 1
    assert stats.snapshot_minute(SimpleNamespace(redis=redis)) == 0
    assert redis.hget(contract.STATS_MINUTES, minute + 1) == b"30 14"


def test_account_page_shows_days_and_the_latest_demographics(console, browser):
    from workers import records

    settings, _app = console
    day = records.account_insights(ACCOUNT, "2026-11-20", {"reach": 310, "views": 900}, {}, "schedule")
    demographics = records.account_insights(
        ACCOUNT,
        "2026-11-20",
        {},
        {},
        "schedule",
        breakdowns={"follower_demographics": {"country": {"DE": 120, "FR": 80}, "age": {"25-34": 150}}},
        timeframe="this_month",
    )
    store(settings, [day, demographics])
    login(browser)
    page = browser.get(f"/console/accounts/{ACCOUNT}").get_data(as_text=True)
    assert "follower demographics by country (this_month)" in page and "No demographics stored yet" not in page
    assert "follower demographics by age (this_month)" in page
