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

from igrelay.sandbox import account_insights, errors, fields, nodes
from igrelay.sandbox.data import Account, Media, SandboxData, Token
from igrelay.sandbox.errors import GraphErrorReply

_VERSION = re.compile(r"v\d+\.\d+")
TOKEN_LIFETIME = 5_184_000  # 60 days, https://developers.facebook.com/documentation/instagram-platform/reference/refresh_access_token
WEBHOOK_FIELDS = [  # https://developers.facebook.com/docs/instagram-platform/webhooks
    "comments",
    "live_comments",
    "mentions",
    "message_edit",
    "message_reactions",
    "messages",
    "messaging_handover",
    "messaging_optins",
    "messaging_postbacks",
    "messaging_referral",
    "messaging_seen",
    "standby",
    "story_insights",
]
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


def resolve(data: SandboxData, path: str) -> Route:
    """Name the route for ``path``; unknown shapes get the name ``unknown``."""
    parts = [p for p in path.split("/") if p]
    version = parts.pop(0) if parts and _VERSION.fullmatch(parts[0]) else None
    if parts == ["refresh_access_token"]:
        return Route("refresh_token", path, version)
    if version is None or not parts or len(parts) > 2:
        return Route("unknown", path, version)
    if parts == ["debug_token"]:
        return Route("debug_token", path, version)
    node, edge = parts[0], (parts[1] if len(parts) == 2 else None)
    kind = "user" if node == "me" or node in data.accounts else "media" if node in data.media else "node"
    if edge is None:
        name = {"user": "user_node", "media": "media_node", "node": "node"}[kind]
        return Route("me" if node == "me" else name, path, version, node)
    return Route(_EDGES.get((kind, edge), "unknown_edge"), path, version, node, edge)


def answer(route: Route, call: Call) -> dict[str, Any]:
    """The JSON body for ``route``, or the GraphErrorReply Meta would send."""
    if route.name == "unknown":
        raise errors.unknown_path(route.path)
    if route.name == "debug_token":
        return _debug_token(call)
    token = authenticate(call)
    if route.name == "refresh_token":
        return _refresh(call, token)
    target = _target(route, call, token)
    if route.name == "unknown_edge":
        raise errors.nonexisting_field(route.edge or "", "IGMedia" if isinstance(target, Media) else "IGUser")
    if route.name == "subscribed_apps":
        return _subscribed_apps(call, target)
    if call.method != "GET":
        raise errors.no_object(route.node or "", call.method)
    return _READS[route.name](call, target)


def authenticate(call: Call) -> Token:
    """The valid token, or Meta's 104 / 190 / 190-463 error."""
    if not call.token:
        raise errors.missing_token()
    token = call.view.data.tokens.get(call.token)
    if token is None:
        raise errors.invalid_token()
    if token.expired:
        raise errors.expired_token(call.view.now)
    return token


def _target(route: Route, call: Call, token: Token) -> Account | Media:
    """The node, if it exists and belongs to the token's account; else 100/33."""
    data, node = call.view.data, route.node or ""
    if node == "me" or node == token.account_id:
        return data.accounts[token.account_id]
    media = data.media.get(node)
    if media is None or media.deleted or media.account_id != token.account_id:
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


def _refresh(call: Call, token: Token) -> dict[str, Any]:
    """A new long-lived token; the old one keeps working until it expires, as Meta's does."""
    if call.params.get("grant_type") != "ig_refresh_token":
        raise GraphErrorReply(100, "Invalid grant_type: must be ig_refresh_token", type="IGApiException")
    new = call.view.data.add_token(token.account_id)
    return {"access_token": new, "token_type": "bearer", "expires_in": TOKEN_LIFETIME}


def _subscribed_apps(call: Call, account: Account | Media) -> dict[str, Any]:
    """GET lists, POST replaces, DELETE clears the account's webhook fields (IG-WH, step 1)."""
    if not isinstance(account, Account):
        raise errors.nonexisting_field("subscribed_apps", "IGMedia")
    if call.method == "GET":
        current = account.subscribed_fields
        return {"data": [{"subscribed_fields": list(current)}] if current else []}
    if call.method == "DELETE":
        account.subscribed_fields = []
        return {"success": True}
    wanted = _csv(call.params.get("subscribed_fields", ""))
    if not wanted:
        raise errors.param_required("subscribed_fields")
    for name in wanted:
        if name not in WEBHOOK_FIELDS:
            raise GraphErrorReply(
                100, f'(#100) Param subscribed_fields must be one of {{{", ".join(WEBHOOK_FIELDS)}}} - got "{name}"'
            )
    account.subscribed_fields = wanted
    return {"success": True}


def _debug_token(call: Call) -> dict[str, Any]:
    """https://developers.facebook.com/docs/graph-api/reference/debug_token"""
    data = call.view.data
    if not call.token or (call.token not in data.tokens and "|" not in call.token):
        raise errors.missing_token() if not call.token else errors.invalid_token()
    token = data.tokens.get(call.params.get("input_token") or "")
    now = int(call.view.now.timestamp())
    info: dict[str, Any] = {
        "app_id": "1000000000000001",
        "type": "USER",
        "application": "igrelay sandbox",
        "is_valid": bool(token and not token.expired),
        "scopes": SCOPES,
    }
    if token:
        info.update(
            user_id=token.account_id,
            expires_at=now + TOKEN_LIFETIME,
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


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
