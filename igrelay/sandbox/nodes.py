"""How the sandbox renders IG media and IG user nodes, and pages through edges, as Meta does.

https://developers.facebook.com/docs/instagram-platform/reference/instagram-media
https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-user/media
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from igrelay.sandbox import errors, fields, media_insights
from igrelay.sandbox.data import Account, Media, SandboxData, meta_time, permalink, shortcode
from igrelay.sandbox.errors import GraphErrorReply
from igrelay.sandbox.fields import Field

DEFAULT_LIMIT, MAX_LIMIT = 25, 100


@dataclass
class View:
    """What rendering needs besides the node: the data, the clock and the sandbox's switches."""

    data: SandboxData
    now: datetime
    withdrawn: Collection[str] = ()
    empty: Collection[str] = ()
    login_type: str = "instagram"
    refusal_style: str = "mixed"


def media_node(view: View, media: Media, wanted: list[Field]) -> dict[str, Any]:
    """The media with the requested fields; ``id`` always, empty edges left out, as Meta does."""
    node: dict[str, Any] = {"id": media.id}
    for wanted_field in wanted:
        render = _MEDIA_FIELDS.get(wanted_field.name)
        if render is None:
            raise errors.nonexisting_field(wanted_field.name, "IGMedia")
        value = render(view, media, wanted_field)
        if value is not None:
            node[wanted_field.name] = value
    return node


def media_insights_data(view: View, media: Media, metrics: list[str], breakdowns: list[str]) -> list[dict]:
    """The insights ``data`` list for ``media`` or the GraphErrorReply that fails the whole call."""
    if not metrics:
        raise errors.param_required("metric")
    media_insights.check_access(media)
    media_insights.check_metrics(media, metrics, view.withdrawn, view.login_type, view.refusal_style)
    media_insights.check_breakdowns(metrics, breakdowns)
    if not media_insights.check_media(media, view.now):
        return []
    return media_insights.insight_items(media, metrics, breakdowns, view.now, view.empty)


def _insights(view: View, media: Media, wanted: Field) -> dict[str, Any] | None:
    metrics, breakdowns = wanted.modifiers.get("metric", []), wanted.modifiers.get("breakdown", [])
    data = media_insights_data(view, media, metrics, breakdowns)
    return {"data": data} if data else None


def _children(view: View, media: Media, wanted: Field) -> dict[str, Any] | None:
    kids = [view.data.media[i] for i in media.children if not view.data.media[i].deleted]
    return {"data": [media_node(view, kid, list(wanted.subfields)) for kid in kids]} if kids else None


def _counter(metric: str) -> Callable[[View, Media, Field], int | None]:
    def render(view: View, media: Media, _: Field) -> int | None:
        if media.media_product_type == "STORY" or media.parent_id:
            return None
        return int(media_insights.value(media, metric, view.now))

    return render


_MEDIA_FIELDS: dict[str, Callable[[View, Media, Field], Any]] = {
    "id": lambda v, m, f: m.id,
    "media_type": lambda v, m, f: m.media_type,
    "media_product_type": lambda v, m, f: m.media_product_type,
    "timestamp": lambda v, m, f: meta_time(m.timestamp),
    "caption": lambda v, m, f: m.caption or None,
    "username": lambda v, m, f: v.data.accounts[m.account_id].username,
    "permalink": lambda v, m, f: permalink(m, v.data.accounts[m.account_id].username),
    "shortcode": lambda v, m, f: shortcode(m.id),
    "media_url": lambda v, m, f: f"https://sandbox.invalid/media/{m.id}.jpg",
    "thumbnail_url": lambda v, m, f: f"https://sandbox.invalid/thumb/{m.id}.jpg" if m.media_type == "VIDEO" else None,
    "is_comment_enabled": lambda v, m, f: m.media_product_type != "STORY",
    "owner": lambda v, m, f: {"id": m.account_id},
    "like_count": _counter("likes"),
    "comments_count": _counter("comments"),
    "children": _children,
    "insights": _insights,
}


def user_node(view: View, account: Account, wanted: list[Field]) -> dict[str, Any]:
    """The IG user with the requested fields, as each login type's host has them.

    Under Instagram Login ``id`` is the app-scoped id and ``user_id`` the professional account id that
    webhooks carry (https://developers.facebook.com/docs/instagram-platform/instagram-api-with-instagram-login/get-started);
    under Facebook Login ``id`` is that account id and the node has no ``user_id``.
    """
    instagram = view.login_type == "instagram"
    known = {
        "id": account.app_scoped_id if instagram else account.id,
        "username": account.username,
        "name": account.name,
        "followers_count": account.followers_count,
        "follows_count": account.follows_count,
        "media_count": len(listed_media(view, account.id, stories=False)),
        "biography": f"{account.name} (sandbox)",
        "profile_picture_url": f"https://sandbox.invalid/profile/{account.id}.jpg",
    }
    known.update({"user_id": account.id, "account_type": "BUSINESS"} if instagram else {"ig_id": int(account.id[-9:])})
    node: dict[str, Any] = {"id": known["id"]}
    for wanted_field in wanted:
        if wanted_field.name not in known:
            raise errors.nonexisting_field(wanted_field.name, "IGUser" if not instagram else "User")
        node[wanted_field.name] = known[wanted_field.name]
    return node


def listed_media(view: View, account_id: str, *, stories: bool) -> list[Media]:
    """Newest first: the feed and reels (no children), or the stories of the last 24 h."""

    def keep(m: Media) -> bool:
        if m.account_id != account_id or m.deleted or m.parent_id:
            return False
        if not stories:
            return m.media_product_type != "STORY"
        return m.media_product_type == "STORY" and view.now - m.timestamp < media_insights.STORY_LIFETIME

    return sorted(filter(keep, view.data.media.values()), key=_order, reverse=True)


def page(view: View, items: list[Media], params: Mapping[str, str], link: str) -> dict[str, Any]:
    """One page of ``items`` with Meta's cursors; ``next`` is left out on the last page."""
    limit = _limit(params)
    keys = [_order(m) for m in items]
    if "after" in params:
        start = sum(1 for k in keys if k >= _decode(params["after"]))
    elif "before" in params:
        start = max(0, sum(1 for k in keys if k > _decode(params["before"])) - limit)
    else:
        start = 0
    chunk = items[start : start + limit]
    wanted = fields.parse(params.get("fields", ""))
    body: dict[str, Any] = {"data": [media_node(view, m, wanted) for m in chunk]}
    if chunk:
        cursors = {"before": _encode(chunk[0]), "after": _encode(chunk[-1])}
        body["paging"] = {"cursors": cursors}
        rest = {k: v for k, v in params.items() if k not in ("after", "before")}
        if start + limit < len(items):
            body["paging"]["next"] = f"{link}?{urlencode({**rest, 'after': cursors['after']})}"
        if start > 0:
            body["paging"]["previous"] = f"{link}?{urlencode({**rest, 'before': cursors['before']})}"
    return body


def _limit(params: Mapping[str, str]) -> int:
    try:
        return max(1, min(int(params.get("limit", DEFAULT_LIMIT)), MAX_LIMIT))
    except ValueError as exc:
        raise GraphErrorReply(100, "(#100) Param limit must be a number") from exc


def _order(media: Media) -> tuple[float, int]:
    return media.timestamp.timestamp(), int(media.id)


def _encode(media: Media) -> str:
    """An opaque cursor naming the item's place, stable when newer media arrive."""
    stamp, number = _order(media)
    return base64.urlsafe_b64encode(f"{stamp!r}:{number}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[float, int]:
    try:
        stamp, number = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(":")
        return float(stamp), int(number)
    except ValueError as exc:
        raise GraphErrorReply(100, "(#100) The cursor is invalid") from exc
