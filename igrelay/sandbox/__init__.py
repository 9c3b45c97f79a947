"""A sandbox Graph API: a local imitation of Meta's Instagram Platform, either login type.

igrelay's Graph client, its tests, ``igrelay dev`` and the benchmarks talk to it instead of Meta. It
answers with Meta's shapes, error envelopes and usage headers, and lets a test inject faults, expire
tokens, withdraw metrics, deny a media and move the clock::

    with Sandbox(login_type="instagram") as sb:   # or "facebook"; never guessed from the host name
        requests.get(f"{sb.url}/v25.0/me/media", headers={"Authorization": f"Bearer {sb.token_for(id)}"})

Which sandbox URL plays which Meta endpoint (point ``GRAPH_API_URL`` at ``sb.url``)::

    Instagram Login (graph.instagram.com)
    GET|POST {url}/oauth/authorize          www.instagram.com/oauth/authorize (IGRELAY_OAUTH_DIALOG_URL)
    POST     {url}/oauth/access_token       api.instagram.com/oauth/access_token (IGRELAY_OAUTH_TOKEN_URL)
    GET      {url}[/{v}]/access_token?grant_type=ig_exchange_token   graph.instagram.com/access_token
    GET      {url}[/{v}]/refresh_access_token?grant_type=ig_refresh_token&access_token=...
    Facebook Login (graph.facebook.com)
    GET|POST {url}/{v}/dialog/oauth         www.facebook.com/{v}/dialog/oauth (IGRELAY_OAUTH_DIALOG_URL)
    GET      {url}/{v}/oauth/access_token   graph.facebook.com/{v}/oauth/access_token, code exchange
             (IGRELAY_OAUTH_TOKEN_URL) and grant_type=fb_exchange_token
    GET      {url}/{v}/me/accounts          the Pages, with instagram_business_account and Page tokens
    GET|POST|DELETE {url}/{v}/{page-id}/subscribed_apps   every app on the Page (another app too)
    Both
    GET  /{v}/{media-id}?fields=...,insights.metric(...)   GET /{v}/{media-id}/insights, /children
    GET  /{v}/{ig-user-id|me}?fields=...   /media, /stories (cursor paging), /insights
    GET|POST|DELETE /{v}/me/subscribed_apps (Instagram Login)      GET /{v}/debug_token?input_token=...

The dialog is a plain HTML consent page listing the demo accounts, with Allow and Deny per account;
it redirects to ``redirect_uri`` with ``code`` and ``state``, or ``error=access_denied``. The app is
``app_id``/``app_secret`` (defaults ``DEFAULT_APP_ID`` 1000000000000001 and ``DEFAULT_APP_SECRET``
``sandbox-app-secret``); codes are single use, expire, and must come back with the same redirect URI.

Tokens are deterministic (``IGAAsandbox<account id>``, ``EAAsandboxPage<account id>`` under Facebook
Login; issued 10 days before the sandbox started, so they refresh and expire 50 days later on the
sandbox clock) so ``python -m igrelay.sandbox`` is usable by hand. Under Instagram Login ``/me``'s
``id`` is an app-scoped id and ``user_id`` the account id webhooks carry; both work as paths.
"""

from igrelay.sandbox.data import Account, Media, SandboxData, demo_data
from igrelay.sandbox.errors import GraphErrorReply
from igrelay.sandbox.server import DEFAULT_APP_ID, DEFAULT_APP_SECRET, Sandbox

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_APP_SECRET",
    "Account",
    "GraphErrorReply",
    "Media",
    "Sandbox",
    "SandboxData",
    "demo_data",
]
