"""Which Graph API path is which route, who may call it, and what each route answers.

``resolve(data, path)`` names the route (for counters and fault injection) before any check;
``answer(route, call)`` authenticates and returns the JSON body or raises ``GraphErrorReply``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from igrelay.sandbox import account_insights, errors, fields, login, nodes
from igrelay.sandbox.data import LONG_LIVED, Account, Media, SandboxData, Token
from igrelay.sandbox.errors import GraphErrorReply

_VERSION = re.compile(r"v\d+\.\d+")
TOKEN_LIFETIME = 5_184_000  # 60 days, https://developers.facebook.com/documentation/instagram-platform/reference/refresh_access_token
REFRESH_MIN_AGE = timedelta(hours=24)  # same page: "at least 24 hours old but has not expired"
# Instagram Login's fields: mentions come inside comments and story_insights is not offered
# (https://developers.facebook.com/docs/instagram-platform/webhooks)
WEBHOOK_FIELDS = [
    "comments",
    "live_comments",
    "message_edit",
    "message_reactions",
    "messages",
    "messaging_handover",
    "messaging_optins",
    "messaging_postbacks",
    "messaging_referral",
    "messaging_seen",
    "standby",
]
PAGE_FIELDS = [  # https://developers.facebook.com/docs/graph-api/webhooks/reference/page
    "feed",
    "mention",
    "message_deliveries",
    "message_echoes",
    "message_reactions",
    "message_reads",
    "messages",
    "messaging_handovers",
    "messaging_optins",
    "messaging_postbacks",
    "messaging_referrals",
    "standby",
]
OTHER_APP = {  # GET /{page}/subscribed_apps lists every app on the Page, not only this one
    "category": "Business",
    "link": "https://crm.example.com/",
    "name": "Another CRM",
    "id": "1000000000000999",
    "subscribed_fields": ["feed", "messages", "messaging_postbacks"],
}
FB_USER = {"id": "100000000000777", "name": "Sandbox User"}
SCOPES = [
    "instagram_business_basic",
    "instagram_business_manage_insights",
    "instagram_business_manage_comments",
    "instagram_business_manage_messages",
]
_EDGES = {
    ("user", "media"): "user_media",
    ("user", "stories"): "user_stories",
    ("user", "insights"): "user_insights",
    ("user", "subscribed_apps"): "subscribed_apps",
    ("user", "accounts"): "me_accounts",
    ("page", "subscribed_apps"): "page_subscribed_apps",
    ("media", "insights"): "media_insights",
    ("media", "children"): "media_children",
}


@dataclass(frozen=True)
class Route:
    """A parsed path: the route name, the version, the node (``me`` or an id) and the edge."""

    name: str
    path: str
    version: str | None = None
    node: str | None = None
    edge: str | None = None


@dataclass
class Call:
    """One request as the routes see it."""

    method: str
    params: dict[str, str]
    token: str | None
    view: nodes.View
    base_url: str
    query_token: str | None = None
    login: login.Login | None = None
    path: str = ""


def resolve(data: SandboxData, path: str) -> Route:
    """Name the route for ``path``; unknown shapes get the name ``unknown``."""
    parts = [p for p in path.split("/") if p]
    version = parts.pop(0) if parts and _VERSION.fullmatch(parts[0]) else None
    special = _special(data.login_type, parts, version)
    if special:
        return Route(special, path, version)
    if version is None or not parts or len(parts) > 2:
        return Route("unknown", path, version)
    if parts == ["debug_token"]:
        return Route("debug_token", path, version)
    node, edge = parts[0], (parts[1] if len(parts) == 2 else None)
    kind = _kind(data, node)
    if edge is None:
        name = {"user": "user_node", "media": "media_node", "page": "page_node", "node": "node"}[kind]
        return Route("me" if node == "me" else name, path, version, node)
    return Route(_EDGES.get((kind, edge), "unknown_edge"), path, version, node, edge)


def _special(login_type: str, parts: list[str], version: str | None) -> str | None:
    """Token and login endpoints, which the login type being played decides."""
    if login_type == "instagram":
        if parts == ["refresh_access_token"]:
            return "refresh_token"
        if parts == ["access_token"]:
            return "ig_exchange_token"
        if version is None and parts == ["oauth", "authorize"]:
            return "oauth_dialog"
        if version is None and parts == ["oauth", "access_token"]:
            return "ig_code_exchange"
        return None
    if version and parts == ["dialog", "oauth"]:
        return "oauth_dialog"
    if version and parts == ["oauth", "access_token"]:
        return "fb_oauth_token"
    return None


def _kind(data: SandboxData, node: str) -> str:
    if node == "me" or find_account(data, node) is not None:
        return "user"
    if node in data.media:
        return "media"
    if data.login_type == "facebook" and any(a.page_id == node for a in data.accounts.values()):
        return "page"
    return "node"


def find_account(data: SandboxData, node: str) -> Account | None:
    """The account a path names: its id or, under Instagram Login, its app-scoped id."""
    if node in data.accounts:
        return data.accounts[node]
    if data.login_type == "instagram":
        return next((a for a in data.accounts.values() if a.app_scoped_id == node), None)
    return None


def answer(route: Route, call: Call) -> dict[str, Any] | login.Page:
    """The JSON body (or login page) for ``route``, or the GraphErrorReply Meta would send."""
    if route.name == "unknown":
        raise errors.unknown_path(route.path)
    if route.name in _LOGIN:
        return _LOGIN[route.name](call)
    if route.name == "debug_token":
        return _debug_token(call)
    if route.name == "refresh_token":
        return _refresh(call)
    token = authenticate(call)
    if route.name == "me" and call.view.login_type == "facebook":
        return _facebook_me(call, token)
    if route.name == "me_accounts" and route.node == "me" and token.kind == "user" and not token.account_id:
        return _me_accounts(call, token)
    if route.name in ("page_node", "page_subscribed_apps"):
        return _page(route, call, token)
    target = _target(route, call, token)
    if route.name == "unknown_edge":
        raise errors.nonexisting_field(route.edge or "", "IGMedia" if isinstance(target, Media) else "IGUser")
    if route.name == "subscribed_apps":
        return _subscribed_apps(call, target)
    if route.name == "me_accounts":
        raise errors.nonexisting_field("accounts", "IGUser")
    if call.method != "GET":
        raise errors.no_object(route.node or "", call.method)
    return _READS[route.name](call, target)


def authenticate(call: Call, value: str | None = None) -> Token:
    """The valid token, or Meta's 104 / 190 / 190-463 error."""
    value = value if value is not None else call.token
    if not value:
        raise errors.missing_token()
    token = call.view.data.tokens.get(value)
    if token is None:
        raise errors.invalid_token()
    if token.dead(call.view.now):
        raise errors.expired_token(call.view.now)
    return token


def _reachable(token: Token) -> set[str]:
    return {token.account_id, *token.accounts} - {""}


def _target(route: Route, call: Call, token: Token) -> Account | Media:
    """The node, if it exists and the token may read it; else 100/33."""
    data, node = call.view.data, route.node or ""
    if node == "me" and token.account_id:
        return data.accounts[token.account_id]
    account = find_account(data, node)
    if account is not None and account.id in _reachable(token):
        return account
    media = data.media.get(node)
    if media is None or media.deleted or media.account_id not in _reachable(token):
        raise errors.no_object(node, call.method)
    return media


def _media_node(call: Call, media: Media) -> dict[str, Any]:
    return nodes.media_node(call.view, media, fields.parse(call.params.get("fields", "")))


def _media_insights(call: Call, media: Media) -> dict[str, Any]:
    metrics = _csv(call.params.get("metric", ""))
    return {"data": nodes.media_insights_data(call.view, media, metrics, _csv(call.params.get("breakdown", "")))}


def _media_children(call: Call, media: Media) -> dict[str, Any]:
    kids = [call.view.data.media[i] for i in media.children if not call.view.data.media[i].deleted]
    return nodes.page(call.view, kids, call.params, f"{call.base_url}/{media.id}/children")


def _user_node(call: Call, account: Account) -> dict[str, Any]:
    return nodes.user_node(call.view, account, fields.parse(call.params.get("fields", "")))


def _listing(stories: bool) -> Callable[[Call, Account], dict[str, Any]]:
    def read(call: Call, account: Account) -> dict[str, Any]:
        items = nodes.listed_media(call.view, account.id, stories=stories)
        edge = "stories" if stories else "media"
        return nodes.page(call.view, items, call.params, f"{call.base_url}/{account.id}/{edge}")

    return read


def _user_insights(call: Call, account: Account) -> dict[str, Any]:
    view = call.view
    return {"data": account_insights.account_insights(account, call.params, view.now, view.withdrawn)}


_READS = {
    "media_node": _media_node,
    "media_insights": _media_insights,
    "media_children": _media_children,
    "user_node": _user_node,
    "me": _user_node,
    "user_media": _listing(False),
    "user_stories": _listing(True),
    "user_insights": _user_insights,
}


def _refresh(call: Call) -> dict[str, Any]:
    """A new 60-day token for one at least 24 h old and unexpired; the old one works until it expires.

    Meta documents only the ``access_token`` query parameter here, so a token in the Authorization header
    is not looked at (https://developers.facebook.com/documentation/instagram-platform/reference/refresh_access_token).
    """
    token = authenticate(call, call.query_token or "")
    if call.params.get("grant_type") != "ig_refresh_token":
        raise GraphErrorReply(100, "Invalid grant_type: must be ig_refresh_token")
    if not token.long_lived:
        raise GraphErrorReply(100, "(#100) Only long-lived access tokens can be refreshed")
    if call.view.now - token.issued_at < REFRESH_MIN_AGE:
        raise errors.token_too_young()
    new = call.view.data.add_token(token.account_id, call.view.now, LONG_LIVED)
    return {"access_token": new, "token_type": "bearer", "expires_in": TOKEN_LIFETIME}


def _subscribed_apps(call: Call, account: Account | Media) -> dict[str, Any]:
    """Instagram Login: GET lists, POST replaces, DELETE clears the account's webhook fields (IG-WH, step 1)."""
    if not isinstance(account, Account) or call.view.login_type != "instagram":
        raise errors.nonexisting_field("subscribed_apps", "IGMedia" if isinstance(account, Media) else "IGUser")
    if call.method == "GET":
        current = account.subscribed_fields
        return {"data": [{"subscribed_fields": list(current)}] if current else []}
    if call.method == "DELETE":
        account.subscribed_fields = []
        return {"success": True}
    account.subscribed_fields = _wanted_fields(call, WEBHOOK_FIELDS)
    return {"success": True}


def _wanted_fields(call: Call, allowed: list[str]) -> list[str]:
    wanted = _csv(call.params.get("subscribed_fields", ""))
    if not wanted:
        raise errors.param_required("subscribed_fields")
    for name in wanted:
        if name not in allowed:
            raise GraphErrorReply(
                100, f'(#100) Param subscribed_fields must be one of {{{", ".join(allowed)}}} - got "{name}"'
            )
    return wanted


def _page(route: Route, call: Call, token: Token) -> dict[str, Any]:
    """Facebook Login's Page node and its subscribed_apps edge (every app on the Page is listed)."""
    # https://developers.facebook.com/docs/graph-api/reference/page/subscribed_apps
    account = next(a for a in call.view.data.accounts.values() if a.page_id == route.node)
    if account.id not in _reachable(token):
        raise errors.no_object(route.node or "", call.method)
    if route.name == "page_node":
        return _page_fields(account, call.params.get("fields", "id,name"))
    if call.method == "POST":
        account.page_fields = _wanted_fields(call, PAGE_FIELDS)
        return {"success": True}
    if call.method == "DELETE":
        account.page_fields = []
        return {"success": True}
    ours = {**_APP_ENTRY, "id": call.login.app_id if call.login else "", "subscribed_fields": account.page_fields}
    return {"data": [OTHER_APP, *([ours] if account.page_fields else [])]}


_APP_ENTRY = {"category": "Business", "link": "https://sandbox.invalid/", "name": "igrelay sandbox"}


def _page_fields(account: Account, wanted: str, token: str | None = None) -> dict[str, Any]:
    known = {
        "id": account.page_id,
        "name": f"{account.name} Page",
        "category": "Business",
        "category_list": [{"id": "2233", "name": "Business"}],
        "tasks": ["ADVERTISE", "ANALYZE", "CREATE_CONTENT", "MESSAGING", "MODERATE", "MANAGE"],
        "instagram_business_account": {"id": account.id},
        "access_token": token,
    }
    node: dict[str, Any] = {}
    for name in _csv(wanted):
        if name not in known:
            raise errors.nonexisting_field(name, "Page")
        if known[name] is not None:
            node[name] = known[name]
    return node


def _facebook_me(call: Call, token: Token) -> dict[str, Any]:
    """Under Facebook Login /me is the Facebook user (user token) or the Page (page token)."""
    if token.kind == "page":
        return _page_fields(call.view.data.accounts[token.account_id], "id,name")
    return dict(FB_USER)


def _me_accounts(call: Call, token: Token) -> dict[str, Any]:
    """The Pages the user granted, each with a Page token (which never expires from a long-lived user token)."""
    data, wanted = call.view.data, call.params.get("fields", "access_token,category,category_list,name,id,tasks")
    pages = []
    for account_id in token.accounts:
        page_token = f"EAAsandboxPage{account_id}"
        if not token.long_lived:  # a Page token from a short-lived user token ends with it
            page_token = data.add_token(account_id, call.view.now, token.expires_at - call.view.now, kind="page")  # type: ignore[operator]
        pages.append(_page_fields(data.accounts[account_id], wanted, page_token))
    cursors = {"before": "QVFIUmFhc2FuZGJveA", "after": "QVFIUmFhc2FuZGJveA"}
    return {"data": pages, "paging": {"cursors": cursors}}


def _debug_token(call: Call) -> dict[str, Any]:
    """https://developers.facebook.com/docs/graph-api/reference/debug_token"""
    data = call.view.data
    if not call.token or (call.token not in data.tokens and "|" not in call.token):
        raise errors.missing_token() if not call.token else errors.invalid_token()
    token = data.tokens.get(call.params.get("input_token") or "")
    now = int(call.view.now.timestamp())
    app_id = call.login.app_id if call.login else "1000000000000001"
    info: dict[str, Any] = {
        "app_id": app_id,
        "type": "PAGE" if token and token.kind == "page" else "USER",
        "application": "igrelay sandbox",
        "is_valid": bool(token and not token.dead(call.view.now)),
        "scopes": SCOPES,
    }
    if token:
        info.update(
            user_id=token.account_id or FB_USER["id"],
            expires_at=int(token.expires_at.timestamp()) if token.expires_at else 0,
            issued_at=int(token.issued_at.timestamp()),
            data_access_expires_at=now + int(timedelta(days=90).total_seconds()),
        )
    if not info["is_valid"]:
        info.update(
            scopes=[],
            error={
                "code": 190,
                "message": "The access token is invalid or has expired.",
                "subcode": 463 if token else 467,
            },
        )
    return {"data": info}


def _dialog(call: Call) -> login.Page | dict[str, Any]:
    assert call.login is not None
    if call.method == "POST":
        return call.login.decide(call.view.data, call.params, call.view.now)
    return call.login.dialog(call.view.data, call.params, call.path)


def _ig_code_exchange(call: Call) -> dict[str, Any]:
    assert call.login is not None
    if call.method != "POST":  # api.instagram.com takes the code exchange as a form POST only
        raise errors.InstagramOAuthError("Unsupported request - method type: get")
    return call.login.instagram_token(call.view.data, call.params, call.view.now)


def _ig_exchange_token(call: Call) -> dict[str, Any]:
    assert call.login is not None
    params = {**call.params, "access_token": call.query_token or ""}
    return call.login.instagram_long_lived(call.view.data, params, call.view.now)


def _fb_oauth_token(call: Call) -> dict[str, Any]:
    assert call.login is not None
    return call.login.facebook_token(call.view.data, call.params, call.view.now)


_LOGIN: dict[str, Callable[[Call], Any]] = {
    "oauth_dialog": _dialog,
    "ig_code_exchange": _ig_code_exchange,
    "ig_exchange_token": _ig_exchange_token,
    "fb_oauth_token": _fb_oauth_token,
}


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
