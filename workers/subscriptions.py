"""Per-account webhook subscriptions: read and set them (``igrelay subscribe``, the watchdog).

Instagram Login subscribes the account itself with its own token on graph.instagram.com
(``/me/subscribed_apps``); Facebook Login subscribes the Page linked to the account, with a Page
token, on graph.facebook.com (``/{page-id}/subscribed_apps``). Page ids and tokens come from the login
flow (a connected account's sealed Page token) or the TOML ``[accounts.<IG_ID>]`` tables (``page_id``,
``page_token``); only fields subscribed at both the Page and the app level are delivered.
``[subscribe] fields`` names the Instagram webhook fields wanted; under Facebook Login the Page is
subscribed to the Page fields they need. A Page lists every app subscribed to it, so only this app's
entry (``META_APP_ID``) counts.
https://developers.facebook.com/docs/instagram-platform/webhooks#enable-subscriptions
https://developers.facebook.com/docs/graph-api/reference/page/subscribed_apps
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from config import accounts as registry
from config.logs import register_secrets
from config.settings import ConfigError, Settings
from workers.graph import GraphError
from workers.graph_client import GraphClient

# Instagram Login: mentions arrive inside comments, and story_insights is not supported.
# https://developers.facebook.com/docs/instagram-platform/webhooks
INSTAGRAM_FIELDS = ("comments", "live_comments")
# Facebook Login: the Instagram fields README asks the app to subscribe to; messages only when wanted.
FACEBOOK_FIELDS = ("comments", "live_comments", "mentions", "story_insights")
# Instagram webhooks flow once the linked Page has the app subscribed to a Page field; feed is the one
# Meta's guide uses (https://developers.facebook.com/docs/graph-api/webhooks/getting-started/webhooks-for-instagram).
PAGE_FIELDS = ("feed",)
# Instagram messaging webhooks need the matching Page field as well
# (https://developers.facebook.com/docs/messenger-platform/webhooks).
PAGE_FIELD_FOR = {
    "messages": "messages",
    "messaging_postbacks": "messaging_postbacks",
    "message_reactions": "message_reactions",
    "messaging_seen": "message_reads",
    "messaging_referral": "messaging_referrals",
    "messaging_optins": "messaging_optins",
    "messaging_handover": "messaging_handovers",
    "standby": "standby",
}


@dataclass(frozen=True)
class Target:
    """Where an account's subscription lives: ``node`` (``me`` or a Page id) and the token to use."""

    account: str
    node: str
    token: str | None = field(repr=False)
    missing: str | None = None  # why it cannot be reached, with what to do


def fields_for(settings: Settings, override: Sequence[str] | None = None) -> tuple[str, ...]:
    """The fields to subscribe the account (Instagram Login) or its Page (Facebook Login) to."""
    wanted = wanted_fields(settings, override)
    return wanted if settings.is_instagram_login else page_fields(wanted)


def wanted_fields(settings: Settings, override: Sequence[str] | None = None) -> tuple[str, ...]:
    """The webhook fields wanted: ``override``, else TOML ``[subscribe] fields``, else the login type's default."""
    if override:
        return tuple(override)
    raw = settings.section("subscribe").get("fields")
    if isinstance(raw, str):
        raw = raw.split(",")
    if raw:
        return tuple(str(f).strip() for f in raw if str(f).strip())
    return INSTAGRAM_FIELDS if settings.is_instagram_login else FACEBOOK_FIELDS


def page_fields(wanted: Sequence[str]) -> tuple[str, ...]:
    """The Page fields for the wanted Instagram fields (names that are Page fields already pass through)."""
    mapped = [PAGE_FIELD_FOR.get(f, f) for f in wanted if f not in FACEBOOK_FIELDS]
    return tuple(dict.fromkeys([*PAGE_FIELDS, *mapped]))


def accounts(settings: Settings, redis: Any = None) -> list[str]:
    """Every account (the registry's and TOML ``[accounts]``); ``""`` for a lone ``IG_ACCESS_TOKEN``."""
    known = registry.ids(redis, settings)
    found = [*known, *(a for a in settings.section("accounts") if a not in known)]
    if not found and settings.access_token and settings.is_instagram_login:
        return [""]
    return found


def target(client: GraphClient, settings: Settings, account: str) -> Target:
    """The node and token for ``account``'s subscription, or a ``missing`` reason."""
    if settings.is_instagram_login:
        token = client.token(account)
        return Target(account, "me", token, None if token else "no access token configured")
    connected = registry.page(client.redis, settings, account) if client.redis is not None else None
    if connected:  # a Page connected through the login flow, with the Page token it gave
        register_secrets([connected[1]])
        return Target(account, *connected)
    table = settings.section("accounts").get(account)
    table = table if isinstance(table, Mapping) else {}
    page, token = str(table.get("page_id") or ""), str(table.get("page_token") or "")
    if not page or not token:
        where = f"[accounts.{account}] in the IGRELAY_CONFIG file"
        return Target(account, page, None, f"Facebook Login subscribes the Page: set page_id and page_token in {where}")
    if not page.isdigit():
        raise ConfigError(f"IGRELAY_CONFIG: [accounts.{account}] page_id must be a number")
    register_secrets([token])
    return Target(account, page, token)


def call(client: GraphClient, method: str, where: Target, params: Mapping[str, str] | None = None) -> Any:
    """``method`` on ``/{node}/subscribed_apps`` with the target's token: the body, or a ``GraphError``."""
    return client.request(method, where.account, f"{where.node}/subscribed_apps", params, token=where.token)


def subscribe(client: GraphClient, where: Target, fields: Sequence[str]) -> None:
    """Subscribe ``where`` to ``fields`` (Meta replaces the previous list); raises ``GraphError``."""
    body = call(client, "POST", where, {"subscribed_fields": ",".join(fields)})
    if body.get("success") is not True:
        raise GraphError("Meta did not confirm the subscription")


def subscribed(client: GraphClient, where: Target) -> set[str] | None:
    """The fields this app has subscribed ``where`` to (None when the Page lists several apps and
    ``META_APP_ID`` is not set, so ours cannot be told apart)."""
    body = call(client, "GET", where)
    apps = [app for app in body.get("data") or [] if isinstance(app, dict)]
    mine = ours(apps, client.settings.meta_app_id)
    if mine is None:
        return None
    return {str(f) for app in mine for f in app.get("subscribed_fields") or []}


def ours(apps: list[dict[str, Any]], app_id: str | None) -> list[dict[str, Any]] | None:
    """This app's entries: by ``app_id``, else entries without an id (the token's own app), else a lone app."""
    # https://developers.facebook.com/docs/graph-api/reference/page/subscribed_apps lists every app on the Page
    if app_id:
        return [a for a in apps if str(a.get("id") or app_id) == app_id]
    if all(not a.get("id") for a in apps) or len(apps) <= 1:
        return apps
    return None
