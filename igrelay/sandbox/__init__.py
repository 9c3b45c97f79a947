"""A sandbox Graph API: a local imitation of graph.instagram.com (Instagram API with Instagram Login).

igrelay's Graph client, its tests, ``igrelay dev`` and the benchmarks talk to it instead of Meta. It
answers with Meta's shapes, error envelopes and usage headers (see ../shared/reference/meta-platform.md
sections 4-8), and lets a test inject faults, expire tokens and withdraw metrics::

    with Sandbox() as sb:
        requests.get(f"{sb.url}/v25.0/me/media", headers={"Authorization": f"Bearer {sb.token_for(id)}"})

Routes (``/{version}`` prefix required except for refresh_access_token)::

    GET  /{v}/{media-id}?fields=...,insights.metric(...)   media_node
    GET  /{v}/{media-id}/insights?metric=...&breakdown=...  media_insights
    GET  /{v}/{media-id}/children                           media_children
    GET  /{v}/{ig-user-id|me}?fields=...                    user_node ("me" for /me)
    GET  /{v}/{ig-user-id|me}/media, /stories               user_media, user_stories
    GET  /{v}/{ig-user-id|me}/insights?metric=&period=      user_insights
    GET|POST|DELETE /{v}/{ig-user-id|me}/subscribed_apps    subscribed_apps
    GET  [/{v}]/refresh_access_token?grant_type=ig_refresh_token   refresh_token
    GET  /{v}/debug_token?input_token=...                   debug_token

Tokens are deterministic (``IGAAsandbox<account id>``) so ``python -m igrelay.sandbox`` is usable by hand.
"""

from igrelay.sandbox.data import Account, Media, SandboxData, demo_data
from igrelay.sandbox.errors import GraphErrorReply
from igrelay.sandbox.server import Sandbox

__all__ = ["Account", "GraphErrorReply", "Media", "Sandbox", "SandboxData", "demo_data"]
