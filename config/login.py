"""Meta's login flow for either login type: the dialog URL, the code exchange, the long-lived token, the accounts.

Shared by the web app (``/connect``) and the command line, so it lives in ``config``. It talks to Meta with
``requests`` and short timeouts. Meta's token endpoints take the app secret and tokens as query or form
parameters (their documented form): those requests are never logged, and no exception raised here
carries a URL, a token or Meta's raw answer, only what went wrong in words.

Instagram Login (https://developers.facebook.com/docs/instagram-platform/instagram-api-with-instagram-login/business-login):
dialog ``www.instagram.com/oauth/authorize``, code exchange ``POST api.instagram.com/oauth/access_token``,
long-lived ``GET graph.instagram.com/access_token?grant_type=ig_exchange_token``, then ``/me``'s ``user_id``
(the id webhooks carry). Facebook Login (https://developers.facebook.com/docs/facebook-login/guides/advanced/manual-flow):
dialog ``www.facebook.com/{v}/dialog/oauth``, ``graph.facebook.com/{v}/oauth/access_token`` with the code
then with ``grant_type=fb_exchange_token``, then ``/me/accounts``: each Page with an
``instagram_business_account`` is an account, its Page token kept.

    LoginError (status, text)           every failure; the page shown says ``text``
    ├── Denied                         the person said no (``error=access_denied``)
    └── Refused                        Meta refused the code, the secret or the token
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import requests

from config import contract
from config.accounts import Login
from config.settings import Settings

LINK_TTL = 3600  # a printed /connect link
STATE_TTL = 600  # an OAuth state: the dialog must come back within ten minutes
TIMEOUT = (3.05, 10.0)  # connect, read: the browser waits on this request
INSTAGRAM_SCOPES = ("instagram_business_basic", "instagram_business_manage_insights")
# https://developers.facebook.com/docs/instagram-platform/instagram-api-with-facebook-login/get-started
# (pages_manage_metadata lets igrelay subscribe the Page to webhooks)
FACEBOOK_SCOPES = (
    "instagram_basic",
    "instagram_manage_insights",
    "pages_show_list",
    "pages_read_engagement",
    "pages_manage_metadata",
)
_ME = {"fields": "user_id,username"}
MESSAGING_FIELDS = ("messages", "messaging_postbacks", "messaging_seen", "message_reactions")


def new_link(redis: Any, settings: Settings) -> str:
    """A single-use ``/connect`` URL valid for an hour (only the SHA-256 of its secret is stored)."""
    secret = secrets.token_urlsafe(32)
    redis.set(contract.connect_link(_digest(secret)), b"1", ex=LINK_TTL)
    return f"{(settings.public_url or '').rstrip('/')}/connect?{urlencode({'link': secret})}"


def take_link(redis: Any, secret: str) -> bool:
    """True, once, for a link ``new_link`` made less than an hour ago."""
    return bool(secret) and redis.getdel(contract.connect_link(_digest(secret))) is not None


def new_state(redis: Any) -> str:
    """A single-use OAuth ``state`` (CSRF) valid for ten minutes."""
    state = secrets.token_urlsafe(32)
    redis.set(contract.connect_state(_digest(state)), b"1", ex=STATE_TTL)
    return state


def take_state(redis: Any, state: str) -> bool:
    """True, once, for a ``state`` from ``new_state`` less than ten minutes old."""
    return bool(state) and redis.getdel(contract.connect_state(_digest(state))) is not None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class LoginError(Exception):
    """The login flow failed; ``str()`` says what happened in words a person can act on."""

    status = 400


class Denied(LoginError):
    """The person cancelled or refused the permissions."""


class Refused(LoginError):
    """Meta refused the exchange (a bad, reused or expired code, a wrong secret or redirect URI)."""


def redirect_uri(settings: Settings) -> str:
    """``IGRELAY_PUBLIC_URL/connect/callback``: the URI to list in the Meta app's login settings."""
    return f"{(settings.public_url or '').rstrip('/')}/connect/callback"


def scopes(settings: Settings) -> list[str]:
    """The permissions the deployment's login type and webhook fields need."""
    if settings.login_type == "facebook":
        return list(FACEBOOK_SCOPES)
    raw = settings.section("subscribe").get("fields") or ("comments", "live_comments")
    fields = [f.strip() for f in (raw.split(",") if isinstance(raw, str) else raw)]
    wanted = list(INSTAGRAM_SCOPES)
    if {"comments", "live_comments", "mentions"} & set(fields):
        wanted.append("instagram_business_manage_comments")
    if set(MESSAGING_FIELDS) & set(fields):
        wanted.append("instagram_business_manage_messages")
    return wanted


def dialog_url(settings: Settings, state: str) -> str:
    """Meta's consent dialog for this app, asking for the scopes, coming back with ``state``."""
    base = settings.oauth_dialog_url or (
        "https://www.instagram.com/oauth/authorize"
        if settings.login_type == "instagram"
        else f"https://www.facebook.com/{settings.graph_api_version}/dialog/oauth"
    )
    query = {
        "client_id": settings.meta_app_id or "",
        "redirect_uri": redirect_uri(settings),
        "response_type": "code",
        "scope": ",".join(scopes(settings)),
        "state": state,
    }
    return f"{base}?{urlencode(query)}"


def denial(params: Any) -> LoginError | None:
    """The error Meta sent back to the redirect URI instead of a code, if any."""
    if not params.get("error"):
        return None
    reason = params.get("error_reason") or params.get("error")
    said = params.get("error_description") or ""
    if reason in ("user_denied", "access_denied"):
        return Denied(f"The login was cancelled or the permissions were refused ({reason}). Nothing was stored.")
    return Refused(f"Meta answered {reason}: {said[:200]}. Nothing was stored.")


class LoginClient:
    """Finishes a login: the code in, the accounts (with their long-lived tokens) out."""

    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        self.settings, self.http = settings, session or requests.Session()

    def finish(self, code: str) -> list[Login]:
        """Exchange ``code`` and read the accounts it gives access to; ``LoginError`` on any failure."""
        if self.settings.login_type == "facebook":
            return self._facebook(code)
        return [self._instagram(code)]

    def _instagram(self, code: str) -> Login:
        s = self.settings
        url = s.oauth_token_url or "https://api.instagram.com/oauth/access_token"
        form = {"client_id": s.meta_app_id or "", "client_secret": s.app_secrets[0], "code": code}
        form.update(grant_type="authorization_code", redirect_uri=redirect_uri(s))
        short = _token(self._call("the code exchange", "POST", url, data=form), "the code exchange")
        # https://developers.facebook.com/docs/instagram-platform/reference/access_token
        query = {"grant_type": "ig_exchange_token", "client_secret": s.app_secrets[0], "access_token": short}
        answer = self._call("the long-lived token exchange", "GET", f"{s.graph_api_url}/access_token", params=query)
        long = _token(answer, "the long-lived token exchange")
        me = self._call("reading the account", "GET", f"{s.graph_base}/me", token=long, params=_ME)
        if not me.get("user_id"):
            raise Refused("Meta did not say which account logged in (no user_id). Nothing was stored.")
        expires = _seconds(answer.get("expires_in"))
        return Login(str(me["user_id"]), str(me.get("username") or ""), long, expires, login_type="instagram")

    def _facebook(self, code: str) -> list[Login]:
        s = self.settings
        url = s.oauth_token_url or f"https://graph.facebook.com/{s.graph_api_version}/oauth/access_token"
        app = {"client_id": s.meta_app_id or "", "client_secret": s.app_secrets[0]}
        exchange = {**app, "redirect_uri": redirect_uri(s), "code": code}
        short = _token(self._call("the code exchange", "GET", url, params=exchange), "the code exchange")
        query = {**app, "grant_type": "fb_exchange_token", "fb_exchange_token": short}
        answer = self._call("the long-lived token exchange", "GET", f"{s.graph_base}/oauth/access_token", params=query)
        long = _token(answer, "the long-lived token exchange")
        fields = {"fields": "id,name,access_token,instagram_business_account"}
        pages = self._call("listing the Pages", "GET", f"{s.graph_base}/me/accounts", token=long, params=fields)
        found = [_page_login(p) for p in pages.get("data") or [] if isinstance(p, dict)]
        logins = [f for f in found if f is not None]
        if not logins:
            raise Refused(
                "None of the Pages you chose has an Instagram professional account linked. Nothing was stored."
            )
        return [self._named(login) for login in logins]

    def _named(self, login: Login) -> Login:
        """The Facebook Login account with its Instagram username (read with its Page token)."""
        url = f"{self.settings.graph_base}/{login.id}"
        node = self._call("reading the account", "GET", url, token=login.token, params={"fields": "username"})
        return replace(login, username=str(node.get("username") or login.username))

    def _call(self, what: str, method: str, url: str, token: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """One request to Meta; its JSON object, or ``LoginError`` naming ``what`` failed (never the URL)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            reply = self.http.request(method, url, timeout=TIMEOUT, headers=headers, **kwargs)
            body = reply.json()
        except (requests.RequestException, ValueError):
            error = LoginError(f"Meta did not answer {what} in time; try again. Nothing was stored.")
            error.status = 502
            raise error from None
        if reply.status_code != 200 or not isinstance(body, dict) or "error" in body or "error_type" in body:
            raise Refused(f"Meta refused {what}: {_meta_message(body)}. Start again. Nothing was stored.") from None
        return body


def _token(body: dict[str, Any], what: str) -> str:
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise Refused(f"Meta answered {what} without a token. Nothing was stored.")
    return token


def _seconds(raw: Any) -> int | None:
    return int(raw) if isinstance(raw, (int, float)) and raw > 0 else None


def _page_login(page: dict[str, Any]) -> Login | None:
    account = page.get("instagram_business_account")
    if not isinstance(account, dict) or not account.get("id") or not page.get("access_token"):
        return None
    name = str(account.get("username") or page.get("name") or "")
    return Login(str(account["id"]), name, str(page["access_token"]), None, str(page.get("id") or ""), "facebook")


def _meta_message(body: Any) -> str:
    """Meta's own words for a refusal, in either shape (Graph's ``error`` object or api.instagram.com's flat one),
    cut short and without anything token-shaped."""
    from config.logs import redact

    if isinstance(body, dict):
        error = body.get("error")
        text = (error.get("message") if isinstance(error, dict) else body.get("error_message")) or str(error or "")
    else:
        text = "an answer that is not JSON"
    return redact(str(text))[:200] or "no reason given"
