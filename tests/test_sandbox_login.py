"""The sandbox plays Meta's login flows: consent page, code exchange, long-lived tokens, /me/accounts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from igrelay.sandbox import Sandbox, demo_data

V = "v25.0"
APP_ID, SECRET = "1000000000000001", "sandbox-app-secret"
REDIRECT = "https://igrelay.example/connect/callback"


@pytest.fixture
def ig() -> Iterator[Sandbox]:
    with Sandbox(demo_data(2, history=0)) as sandbox:
        yield sandbox


@pytest.fixture
def fb() -> Iterator[Sandbox]:
    with Sandbox(demo_data(2, history=0, login_type="facebook"), login_type="facebook") as sandbox:
        yield sandbox


class _Forms(HTMLParser):
    """Each form on the page as a dict of its inputs (the button's name/value kept apart)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"_action": attrs["action"]})
        elif tag == "input":
            self.forms[-1][attrs["name"]] = attrs.get("value", "")


def dialog_url(sb: Sandbox) -> str:
    return f"{sb.url}/oauth/authorize" if sb.login_type == "instagram" else f"{sb.url}/{V}/dialog/oauth"


def consent(sb: Sandbox, decision: str = "allow", account: str | None = None, **overrides: str) -> dict:
    """Open the dialog, press a button; the query Meta redirects back with."""
    params = {
        "client_id": APP_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "instagram_business_basic,instagram_business_manage_insights",
        "state": "s1",
        **overrides,
    }
    page = requests.get(dialog_url(sb), params=params, timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    parser = _Forms()
    parser.feed(page.text)
    form = next(f for f in parser.forms if f["account"] == (account or sb.accounts[0]))
    action = form.pop("_action")
    answer = requests.post(f"{sb.url}{action}", data={**form, "decision": decision}, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def ig_exchange(sb: Sandbox, code: str, **overrides: str) -> requests.Response:
    form = {
        "client_id": APP_ID,
        "client_secret": SECRET,
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT,
        "code": code,
        **overrides,
    }
    return requests.post(f"{sb.url}/oauth/access_token", data=form, timeout=5)


def fb_exchange(sb: Sandbox, **params: str) -> requests.Response:
    return requests.get(f"{sb.url}/{V}/oauth/access_token", params=params, timeout=5)


def test_consent_page_lists_every_account_with_allow_and_deny(ig):
    params = {
        "client_id": APP_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "instagram_business_basic",
    }
    page = requests.get(dialog_url(ig), params=params, timeout=5).text
    for account in ig.data.accounts.values():
        assert f"@{account.username}" in page
    assert page.count('value="allow"') == page.count('value="deny"') == 2
    assert "<script" not in page


def test_instagram_login_whole_flow(ig):
    account = ig.accounts[1]
    code = consent(ig, account=account)["code"]
    body = ig_exchange(ig, code).json()
    assert set(body) == {"access_token", "user_id", "permissions"}
    assert body["user_id"] == int(ig.data.accounts[account].app_scoped_id)
    assert body["permissions"] == ["instagram_business_basic", "instagram_business_manage_insights"]
    params = {"grant_type": "ig_exchange_token", "client_secret": SECRET, "access_token": body["access_token"]}
    long = requests.get(f"{ig.url}/access_token", params=params, timeout=5).json()
    assert set(long) == {"access_token", "token_type", "expires_in"} and long["expires_in"] == 5_184_000
    headers = {"Authorization": f"Bearer {long['access_token']}"}
    me = requests.get(f"{ig.url}/{V}/me", params={"fields": "user_id,username"}, headers=headers, timeout=5).json()
    assert me["user_id"] == account


def test_instagram_denial_and_state(ig):
    query = consent(ig, decision="deny")
    assert query == {
        "error": "access_denied",
        "error_reason": "user_denied",
        "error_description": "The user denied your request.",
        "state": "s1",
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"client_secret": "wrong"}, "Error validating client secret."),
        ({"redirect_uri": "https://elsewhere.example/cb"}, "Error validating verification code."),
        ({"client_id": "42"}, "Invalid platform app"),
    ],
)
def test_instagram_exchange_checks_like_meta(ig, overrides, message):
    code = consent(ig)["code"]
    response = ig_exchange(ig, code, **overrides)
    body = response.json()
    assert response.status_code == 400 and body["error_type"] == "OAuthException" and body["code"] == 400
    assert body["error_message"].startswith(message)
    assert ig_exchange(ig, code).status_code == 200  # a refused attempt does not spend the code


def test_instagram_code_is_single_use_and_expires(ig):
    code = consent(ig)["code"]
    assert ig_exchange(ig, code).status_code == 200
    assert ig_exchange(ig, code).json()["error_message"] == "This authorization code has been used"
    late = consent(ig)["code"]
    ig.advance(3601)
    assert "expired" in ig_exchange(ig, late).json()["error_message"]


def test_instagram_long_lived_exchange_checks_the_secret(ig):
    short = ig_exchange(ig, consent(ig)["code"]).json()["access_token"]
    params = {"grant_type": "ig_exchange_token", "client_secret": "nope", "access_token": short}
    assert requests.get(f"{ig.url}/access_token", params=params, timeout=5).json()["error"]["code"] == 1


def test_dialog_refuses_unknown_app_and_redirect(ig):
    ig.login.redirect_uris = [REDIRECT]
    base = {"client_id": APP_ID, "redirect_uri": REDIRECT, "scope": "instagram_business_basic", "response_type": "code"}
    assert requests.get(dialog_url(ig), params=base, timeout=5).status_code == 200
    for bad in ({"client_id": "1"}, {"redirect_uri": "https://evil.example/"}):
        assert requests.get(dialog_url(ig), params={**base, **bad}, timeout=5).status_code == 400


def test_facebook_login_whole_flow(fb):
    account = fb.data.accounts[fb.accounts[0]]
    query = consent(fb, scope="instagram_basic,instagram_manage_insights,pages_show_list")
    assert query["state"] == "s1"
    base = {"client_id": APP_ID, "client_secret": SECRET}
    short = fb_exchange(fb, redirect_uri=REDIRECT, code=query["code"], **base).json()
    assert short["token_type"] == "bearer" and short["expires_in"] == 3600
    long = fb_exchange(fb, grant_type="fb_exchange_token", fb_exchange_token=short["access_token"], **base).json()
    assert long["expires_in"] == 5_184_000
    headers = {"Authorization": f"Bearer {long['access_token']}"}
    fields = "id,name,access_token,instagram_business_account"
    pages = requests.get(f"{fb.url}/{V}/me/accounts", params={"fields": fields}, headers=headers, timeout=5).json()
    (page,) = pages["data"]
    assert page["id"] == account.page_id and page["instagram_business_account"] == {"id": account.id}
    page_headers = {"Authorization": f"Bearer {page['access_token']}"}
    node = requests.get(f"{fb.url}/{V}/{account.id}", params={"fields": "username"}, headers=page_headers, timeout=5)
    assert node.json()["username"] == account.username
    debug = requests.get(
        f"{fb.url}/{V}/debug_token",
        params={"input_token": page["access_token"], "access_token": f"{APP_ID}|{SECRET}"},
        timeout=5,
    ).json()["data"]
    assert debug["type"] == "PAGE" and debug["expires_at"] == 0  # a Page token from a long-lived user token


def test_facebook_allow_every_page(fb):
    base = {"client_id": APP_ID, "client_secret": SECRET, "redirect_uri": REDIRECT}
    code = consent(fb, account="*")["code"]
    token = fb_exchange(fb, code=code, **base).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    pages = requests.get(f"{fb.url}/{V}/me/accounts", headers=headers, timeout=5).json()["data"]
    assert len(pages) == 2 and all(
        set(p) == {"access_token", "category", "category_list", "name", "id", "tasks"} for p in pages
    )


def test_facebook_code_errors(fb):
    base = {"client_id": APP_ID, "client_secret": SECRET, "redirect_uri": REDIRECT}
    code = consent(fb)["code"]
    mismatch = fb_exchange(fb, **{**base, "redirect_uri": REDIRECT + "/x"}, code=code).json()["error"]
    assert (mismatch["code"], mismatch["error_subcode"], mismatch["type"]) == (100, 36008, "OAuthException")
    assert fb_exchange(fb, **{**base, "client_secret": "x"}, code=code).json()["error"]["message"] == (
        "Error validating client secret."
    )
    assert fb_exchange(fb, **base, code=code).status_code == 200
    used = fb_exchange(fb, **base, code=code).json()["error"]
    assert (used["code"], used["message"], used["type"]) == (
        100,
        "This authorization code has been used.",
        "OAuthException",
    )
    assert consent(fb, decision="deny")["error_reason"] == "user_denied"


def test_login_endpoints_follow_the_login_type(ig, fb):
    assert requests.get(f"{ig.url}/{V}/dialog/oauth", timeout=5).status_code == 400
    assert requests.get(f"{fb.url}/oauth/authorize", timeout=5).json()["error"]["code"] == 2500
    assert re.search("Unknown path", requests.get(f"{fb.url}/refresh_access_token", timeout=5).text)
