"""Meta's login flows as the sandbox plays them: the consent dialog, the code exchange, long-lived tokens.

Instagram Login (https://developers.facebook.com/docs/instagram-platform/instagram-api-with-instagram-login/business-login):
dialog ``GET /oauth/authorize``, code exchange ``POST /oauth/access_token`` (form; errors in
api.instagram.com's flat shape), long-lived ``GET /access_token?grant_type=ig_exchange_token``.
Facebook Login (https://developers.facebook.com/docs/facebook-login/guides/advanced/manual-flow):
dialog ``GET /{v}/dialog/oauth``, ``GET /{v}/oauth/access_token`` with ``code`` or
``grant_type=fb_exchange_token``. A code is single use, bound to its redirect URI, and expires (1 h on
Instagram, 10 min on Facebook).
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from igrelay.sandbox import errors
from igrelay.sandbox.data import LONG_LIVED, SHORT_LIVED, SandboxData
from igrelay.sandbox.errors import GraphErrorReply, InstagramOAuthError

CODE_LIFETIME = {"instagram": timedelta(hours=1), "facebook": timedelta(minutes=10)}
DENIED = {"instagram": "The user denied your request.", "facebook": "Permissions error."}
FRAGMENT = {"instagram": "#_", "facebook": "#_=_"}  # Meta appends these to the redirect
_DIALOG_PARAMS = ("client_id", "redirect_uri", "response_type", "scope", "state")


@dataclass
class Page:
    """A non-JSON answer: an HTML page, or a 302 when ``location`` is set."""

    status: int
    html: str = ""
    location: str | None = None


@dataclass
class Code:
    """An authorization code: who it is for and what it may be exchanged with."""

    account_ids: tuple[str, ...]
    redirect_uri: str
    scopes: list[str]
    expires_at: datetime
    used: bool = False


@dataclass
class Login:
    """The app the sandbox plays (id, secret, allowed redirect URIs) and the codes it handed out."""

    login_type: str
    app_id: str
    app_secret: str
    redirect_uris: list[str] = field(default_factory=list)
    codes: dict[str, Code] = field(default_factory=dict)

    # dialog ----------------------------------------------------------------------------------------
    def dialog(self, data: SandboxData, params: Mapping[str, str], path: str) -> Page:
        """GET: the consent page listing the accounts, or Meta's error page for bad parameters."""
        problem = self._dialog_problem(params)
        if problem:
            return Page(400, _document("Error", f"<p>Invalid Request: {html.escape(problem)}</p>"))
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(params.get(k, ""))}">' for k in _DIALOG_PARAMS
        )
        rows = [_account_form(path, hidden, a.id, f"@{a.username}") for a in data.accounts.values()]
        if self.login_type == "facebook":
            rows.append(_account_form(path, hidden, "*", "every Page and its Instagram account"))
        intro = f"<p>Sandbox app {html.escape(self.app_id)} asks for: {html.escape(params.get('scope', ''))}</p>"
        return Page(200, _document("Log in to the sandbox", intro + "".join(rows)))

    def decide(self, data: SandboxData, params: Mapping[str, str], now: datetime) -> Page:
        """POST from the consent page: a redirect with ``code`` and ``state``, or with Meta's denial."""
        problem = self._dialog_problem(params)
        if problem:
            return Page(400, _document("Error", f"<p>Invalid Request: {html.escape(problem)}</p>"))
        state = {"state": params["state"]} if params.get("state") else {}
        if params.get("decision") != "allow":
            denial = {"error": "access_denied", "error_reason": "user_denied"}
            query = {**denial, "error_description": DENIED[self.login_type], **state}
            return Page(302, location=_join(params["redirect_uri"], query) + FRAGMENT[self.login_type])
        chosen = params.get("account", "")
        accounts = tuple(data.accounts) if chosen == "*" else (chosen,)
        if not chosen or any(a not in data.accounts for a in accounts):
            return Page(400, _document("Error", "<p>Unknown account.</p>"))
        code = secrets.token_urlsafe(24)
        scopes = [s for s in params.get("scope", "").replace(" ", ",").split(",") if s]
        self.codes[code] = Code(accounts, params["redirect_uri"], scopes, now + CODE_LIFETIME[self.login_type])
        query = {"code": code, **state}
        return Page(302, location=_join(params["redirect_uri"], query) + FRAGMENT[self.login_type])

    def _dialog_problem(self, params: Mapping[str, str]) -> str | None:
        if params.get("client_id") != self.app_id:
            return "Invalid platform app"
        if not params.get("redirect_uri") or (self.redirect_uris and params["redirect_uri"] not in self.redirect_uris):
            return "Invalid redirect_uri"
        if params.get("response_type", "code") != "code":
            return "Invalid response_type"
        if self.login_type == "instagram" and "instagram_business_basic" not in params.get("scope", ""):
            return "Invalid scope: instagram_business_basic is required"
        return None

    # code exchange ---------------------------------------------------------------------------------
    def take_code(self, params: Mapping[str, str], now: datetime) -> Code:
        """Check client, secret, code and redirect URI as Meta does; the code is spent."""
        instagram = self.login_type == "instagram"

        def refuse(message: str, code: int = 100, subcode: int | None = None) -> GraphErrorReply:
            return InstagramOAuthError(message) if instagram else GraphErrorReply(code, message, subcode=subcode)

        if params.get("client_id") != self.app_id:
            raise InstagramOAuthError("Invalid platform app") if instagram else errors.bad_client_id()
        if params.get("client_secret") != self.app_secret:
            raise InstagramOAuthError("Error validating client secret.") if instagram else errors.bad_client_secret()
        if instagram and params.get("grant_type") != "authorization_code":
            raise refuse("Invalid grant_type: must be authorization_code")
        code = self.codes.get(params.get("code", ""))
        if code is None:
            raise refuse("Invalid verification code format.")
        if code.used:  # https://github.com/espresso-dev/instagram-basic-display-php/issues/14 (Instagram's wording)
            raise refuse("This authorization code has been used" + ("" if instagram else "."), subcode=36009)
        if now >= code.expires_at:
            raise refuse("This authorization code has expired.", subcode=36007)
        if params.get("redirect_uri") != code.redirect_uri:
            raise refuse(
                "Error validating verification code. Please make sure your redirect_uri is identical to the one "
                "you used in the OAuth dialog request",
                subcode=36008,
            )
        code.used = True
        return code

    def instagram_token(self, data: SandboxData, params: Mapping[str, str], now: datetime) -> dict[str, Any]:
        """api.instagram.com/oauth/access_token: a short-lived token and the app-scoped user id."""
        code = self.take_code(params, now)
        account = data.accounts[code.account_ids[0]]
        token = data.add_token(account.id, now, SHORT_LIVED, long_lived=False)
        # Meta documents this user_id as "an Instagram-scoped user ID", the same as /me's id, sent as a number
        return {"access_token": token, "user_id": int(account.app_scoped_id), "permissions": code.scopes}

    def instagram_long_lived(self, data: SandboxData, params: Mapping[str, str], now: datetime) -> dict[str, Any]:
        """graph.instagram.com/access_token?grant_type=ig_exchange_token: a 60-day token."""
        # https://developers.facebook.com/documentation/instagram-platform/reference/access_token
        if params.get("grant_type") != "ig_exchange_token":
            raise GraphErrorReply(100, "Invalid grant_type: must be ig_exchange_token")
        if params.get("client_secret") != self.app_secret:
            raise errors.bad_client_secret()
        short = _live_token(data, params.get("access_token"), now)
        token = data.add_token(short.account_id, now, LONG_LIVED)
        return {"access_token": token, "token_type": "bearer", "expires_in": int(LONG_LIVED.total_seconds())}

    def facebook_token(self, data: SandboxData, params: Mapping[str, str], now: datetime) -> dict[str, Any]:
        """graph.facebook.com/{v}/oauth/access_token: a code, or fb_exchange_token, for a user token."""
        if params.get("grant_type") == "fb_exchange_token":
            if params.get("client_id") != self.app_id:
                raise errors.bad_client_id()
            if params.get("client_secret") != self.app_secret:
                raise errors.bad_client_secret()
            user = _live_token(data, params.get("fb_exchange_token"), now)
            token = data.add_token("", now, LONG_LIVED, accounts=user.accounts)
            return {"access_token": token, "token_type": "bearer", "expires_in": int(LONG_LIVED.total_seconds())}
        if "code" not in params:
            raise errors.param_required("code")
        code = self.take_code(params, now)
        token = data.add_token("", now, SHORT_LIVED, long_lived=False, accounts=code.account_ids)
        return {"access_token": token, "token_type": "bearer", "expires_in": int(SHORT_LIVED.total_seconds())}


def _live_token(data: SandboxData, value: str | None, now: datetime) -> Any:
    """The token behind ``value``, or Meta's 104 / 190 errors."""
    if not value:
        raise errors.missing_token()
    token = data.tokens.get(value)
    if token is None:
        raise errors.invalid_token()
    if token.dead(now):
        raise errors.expired_token(now)
    return token


def _join(url: str, query: Mapping[str, str]) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(query)}"


def _account_form(path: str, hidden: str, account: str, label: str) -> str:
    return (
        f'<form method="post" action="{html.escape(path)}">{hidden}'
        f'<input type="hidden" name="account" value="{html.escape(account)}">'
        f"<p>{html.escape(label)} "
        '<button name="decision" value="allow">Allow</button> '
        '<button name="decision" value="deny">Deny</button></p></form>'
    )


def _document(title: str, body: str) -> str:
    return f"<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>"
