"""The login flow through the real Flask app against the sandbox, both login types, and every error path."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from redis import Redis

from config import accounts, contract, login
from config.settings import Settings
from igrelay.sandbox import Sandbox, demo_data
from tests.conftest import make_settings, run_worker
from tests.support.env import SECRET
from workers import context

PUBLIC = "https://igrelay.example"
CALLBACK = PUBLIC + "/connect/callback"
V = "v25.0"


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:  # type: ignore[type-arg]
        found = dict(attrs)
        if tag == "form":
            self.forms.append({"_action": found["action"]})
        elif tag == "input":
            self.forms[-1][found["name"]] = found.get("value") or ""


@pytest.fixture(params=["instagram", "facebook"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    kind = request.param
    data = demo_data(2, history=30, history_days=60, login_type=kind)
    with Sandbox(data, login_type=kind, app_secret=SECRET, redirect_uris=[CALLBACK]) as sb:
        yield sb


def login_settings(tmp_path, sb: Sandbox, **extra: str) -> Settings:  # type: ignore[no-untyped-def]
    dialog = f"{sb.url}/oauth/authorize" if sb.login_type == "instagram" else f"{sb.url}/{V}/dialog/oauth"
    token = f"{sb.url}/oauth/access_token" if sb.login_type == "instagram" else f"{sb.url}/{V}/oauth/access_token"
    env = {
        "GRAPH_API_URL": sb.url,
        "IGRELAY_LOGIN_TYPE": sb.login_type,
        "META_APP_ID": "1000000000000001",
        "IGRELAY_PUBLIC_URL": PUBLIC,
        "IGRELAY_OAUTH_DIALOG_URL": dialog,
        "IGRELAY_OAUTH_TOKEN_URL": token,
        **extra,
    }
    return make_settings(tmp_path, **env)


@pytest.fixture
def flow(tmp_path, redis: Redis, sandbox: Sandbox):  # type: ignore[no-untyped-def]
    from webhook import create_app

    settings = login_settings(tmp_path, sandbox)
    context.install(context.Context(settings, redis))
    app = create_app(settings, redis=redis)
    yield settings, app.test_client(), sandbox
    context.install(None)


def consent(dialog: str, decision: str = "allow", pick: int = 0) -> str:
    """Open Meta's (the sandbox's) dialog, press a button: the URL it redirects back to."""
    page = requests.get(dialog, timeout=5)
    assert page.status_code == 200, page.text
    parser = _Forms()
    parser.feed(page.text)
    form = parser.forms[pick]
    action = urlsplit(dialog)._replace(path=form.pop("_action"), query="").geturl()
    answer = requests.post(action, data={**form, "decision": decision}, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def callback_path(location: str) -> str:
    parts = urlsplit(location)
    assert parts.scheme + "://" + parts.netloc + parts.path == CALLBACK
    return f"{parts.path}?{parts.query}"


def start(redis: Redis, settings: Settings, client) -> str:  # type: ignore[no-untyped-def]
    link = login.new_link(redis, settings)
    assert link.startswith(PUBLIC + "/connect?link=")
    reply = client.get(link.removeprefix(PUBLIC))
    assert reply.status_code == 302
    dialog = reply.headers["Location"]
    query = parse_qs(urlsplit(dialog).query)
    assert query["redirect_uri"] == [CALLBACK] and query["state"][0]
    wanted = {"instagram": "instagram_business_manage_insights", "facebook": "pages_show_list"}[settings.login_type]
    assert wanted in query["scope"][0]
    return dialog


def test_whole_flow_stores_sealed_subscribes_and_backfills(flow, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    settings, client, sb = flow
    account = sb.accounts[0]
    reply = client.get(callback_path(consent(start(redis, settings, client))))
    assert reply.status_code == 200, reply.text
    assert account in reply.text
    assert accounts.ids(redis, settings) == [account]
    assert accounts.token(redis, settings, account)
    # No token in clear anywhere in Redis.
    tokens = [t for t in sb.data.tokens if t.startswith(("IGAA", "EAA"))]
    for key in redis.keys("*"):
        dump = redis.dump(key) or b""
        assert not any(t.encode() in dump for t in tokens), key
    queued = redis.lrange("rq:queue:default", 0, -1) or redis.keys("rq:job:*")
    assert queued
    run_worker(settings)
    info = accounts.info(redis, account)
    assert info["subscribed"]
    if settings.login_type == "instagram":
        assert sb.data.accounts[account].subscribed_fields
    else:
        assert sb.data.accounts[account].page_fields
    from workers import backfill

    status = backfill.status(redis, account)
    assert status and status["media_found"] >= 30 and status["state"] == "done"


def test_connecting_twice_fetches_nothing_twice(flow, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    settings, client, sb = flow
    client.get(callback_path(consent(start(redis, settings, client))))
    run_worker(settings)
    calls = sb.calls["media_node"]
    from workers import backfill

    backfill.start(redis, settings, sb.accounts[0])
    run_worker(settings)
    assert sb.calls["media_node"] == calls


def test_denied_stores_nothing(flow, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    settings, client, _sb = flow
    reply = client.get(callback_path(consent(start(redis, settings, client), decision="deny")))
    assert reply.status_code == 400 and b"cancelled" in reply.data
    assert not redis.smembers(contract.ACCOUNTS)


def test_bad_state_reused_code_and_no_link(flow, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    settings, client, _sb = flow
    path = callback_path(consent(start(redis, settings, client)))
    forged = path.replace("state=", "state=x")
    assert client.get(forged).status_code == 400
    assert not redis.smembers(contract.ACCOUNTS)
    # The state is spent by the forged try too? No: a wrong state is unknown, the real one still works once.
    first = client.get(path)
    assert first.status_code == 200
    again = client.get(path)
    assert again.status_code == 400 and b"already used" in again.data
    assert client.get("/connect").status_code == 401
    assert client.get("/connect?link=nope").status_code == 401


def test_reused_code_is_refused_by_meta(flow, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    settings, client, _sb = flow
    location = consent(start(redis, settings, client))
    code = parse_qs(urlsplit(location).query)["code"][0]
    assert client.get(callback_path(location)).status_code == 200
    redis.delete(contract.ACCOUNTS)
    # A second login whose callback carries the already-spent code.
    dialog = start(redis, settings, client)
    state = parse_qs(urlsplit(dialog).query)["state"][0]
    reply = client.get(f"/connect/callback?code={code}&state={state}")
    assert reply.status_code == 400 and b"Meta refused the code exchange" in reply.data
    assert b"Traceback" not in reply.data and code.encode() not in reply.data
    assert not redis.smembers(contract.ACCOUNTS)


def test_env_account_is_not_stored(tmp_path, redis: Redis, sandbox: Sandbox) -> None:  # type: ignore[no-untyped-def]
    from webhook import create_app

    account = sandbox.accounts[0]
    settings = login_settings(tmp_path, sandbox, IG_ACCESS_TOKENS=f"{account}={sandbox.token_for(account)}")
    client = create_app(settings, redis=redis).test_client()
    reply = client.get(callback_path(consent(start(redis, settings, client))))
    assert reply.status_code == 409 and b"IG_ACCESS_TOKENS" in reply.data
    assert not redis.smembers(contract.ACCOUNTS)


def test_login_off_without_its_settings(tmp_path, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    from webhook import create_app

    client = create_app(make_settings(tmp_path), redis=redis).test_client()
    reply = client.get("/connect")
    assert reply.status_code == 404 and b"META_APP_ID" in reply.data


def test_refused_token_is_announced_once_and_cleared_by_reconnecting(flow, redis: Redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from workers import account_status, media_state

    settings, client, sb = flow
    client.get(callback_path(consent(start(redis, settings, client))))
    account = sb.accounts[0]
    with redis.pipeline() as pipe:
        media_state.flag_reauth(pipe, settings, account, RuntimeError("refused"))
        pipe.execute()
    assert accounts.flagged(redis, settings, account)
    assert account_status.announce(redis, settings) == 1
    assert account_status.announce(redis, settings) == 0
    assert redis.get(contract.NEEDS_RECONNECT_COUNT) == b"1"
    run_worker(settings)
    lines = [json.loads(x) for x in (tmp_path / "records.jsonl").read_text().splitlines()]
    status = [r for r in lines if r["kind"] == "account_status"]
    assert len(status) == 1 and status[0]["status"] == "needs_reconnect" and status[0]["account_id"] == account
    described = accounts.describe(redis, settings, account)
    assert described["needs_reconnect"]
    client.get(callback_path(consent(start(redis, settings, client))))  # reconnect
    assert not accounts.flagged(redis, settings, account)


def test_cli_accounts_pause_resume_remove(flow, redis: Redis, capsys) -> None:  # type: ignore[no-untyped-def]
    from igrelay.commands import accounts as command

    settings, client, sb = flow
    client.get(callback_path(consent(start(redis, settings, client))))
    account = sb.accounts[0]
    command.cmd_list(type("A", (), {"json": False})(), settings)
    out = capsys.readouterr().out
    assert account in out and "connected" in out and settings.login_type in out
    for verb in ("pause", "resume"):
        command.cmd_change(type("A", (), {"account": account, "verb": verb, "seconds": None})(), settings)
        assert accounts.active(redis, settings) == ([] if verb == "pause" else [account])
    command.cmd_connect(None, settings)  # type: ignore[arg-type]
    assert capsys.readouterr().out.splitlines()[-1].startswith(PUBLIC + "/connect?link=")
    command.cmd_change(type("A", (), {"account": account, "verb": "remove", "seconds": None})(), settings)
    assert accounts.ids(redis, settings) == [] and not redis.exists(contract.token(account))


def test_console_connect_button_starts_the_flow(tmp_path, redis: Redis, sandbox: Sandbox) -> None:  # type: ignore[no-untyped-def]
    from tests.support.console import console_env
    from tests.support.console import login as console_login
    from webhook import create_app

    env = {k: v for k, v in console_env(tmp_path).items() if k != "IG_ACCESS_TOKENS"}
    settings = login_settings(tmp_path, sandbox, **env)
    client = create_app(settings, redis=redis).test_client()
    assert client.get("/connect").headers["Location"].startswith("/console/login")
    console_login(client)
    link = client.get("/console/connect")
    assert link.status_code == 302
    dialog = client.get(link.headers["Location"].removeprefix(PUBLIC))
    assert dialog.status_code == 302 and dialog.headers["Location"].startswith(sandbox.url)
    landed = client.get(callback_path(consent(dialog.headers["Location"])))
    assert landed.status_code == 302 and landed.headers["Location"].startswith("/console/accounts")
    page = client.get("/console/accounts").get_data(as_text=True)
    assert sandbox.accounts[0] in page and "Backfill" in page


def test_connected_token_is_refreshed_and_one_near_expiry_needs_reconnect(tmp_path, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    import time

    from workers import account_status, polling

    with Sandbox(demo_data(1, history=0)) as sb:
        settings = login_settings(tmp_path, sb)
        account = sb.accounts[0]
        first = sb.issue_token(account, age=2 * 86400)
        accounts.connect(redis, settings, accounts.Login(account, "one", first, 58 * 86400))
        redis.hset(contract.token(account), "issued_at", int(time.time() - 2 * 86400))
        assert polling.refresh_token(redis, settings, account)
        fresh = accounts.token(redis, settings, account)
        assert fresh and fresh != first and redis.hget(contract.token(account), "source") == b"connected"
        redis.hset(contract.token(account), "expires_at", int(time.time() + 3 * 86400))
        assert account_status.announce(redis, settings) == 1
        assert accounts.flagged(redis, settings, account) and accounts.active(redis, settings) == []
