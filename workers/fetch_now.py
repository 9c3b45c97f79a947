"""``igrelay fetch MEDIA_ID``: one media's insights now, with whichever configured token can see it."""

from __future__ import annotations

from redis import Redis

from config.settings import Settings
from workers import metric_registry, records
from workers.graph import AuthError, GraphError, TerminalError
from workers.graph_client import GraphClient, new_session, timeout_for


def fetch_now(settings: Settings, media_id: str, account: str | None = None, redis: Redis | None = None) -> dict:
    """Fetch one media's insights now and return its record (``igrelay fetch MEDIA_ID``).

    Without ``account`` each configured token is tried in turn until one can see the media.
    """
    candidates = [account] if account else [*settings.accounts, *([""] if settings.access_token else [])]
    if not candidates:
        raise AuthError("no access token configured")
    error: GraphError = AuthError("no token could read this media")
    with new_session(2) as session:
        client = GraphClient(session, settings, redis, timeout_for(settings))
        for acc in candidates:
            try:
                return _fetch_record(client, settings, acc, media_id)
            except (AuthError, TerminalError) as exc:
                if isinstance(exc, TerminalError) and exc.reason != "gone":
                    raise
                error = exc  # gone here may mean "another account's media": try the next token
    raise error


def _fetch_record(client: GraphClient, settings: Settings, account: str, media_id: str) -> dict:
    fields = {"fields": "id,media_type,media_product_type,permalink,timestamp,owner"}
    node = client.get(account, media_id, fields)
    owner = account or str((node.get("owner") or {}).get("id") or "unknown")
    kind, media_type = node.get("media_product_type") or "FEED", node.get("media_type")
    try:
        result = client.media(account, media_id, kind, media_type)
    except TerminalError as exc:
        wanted = metric_registry.configured(settings, kind, media_type)
        return records.media_insights(owner, node, {}, dict.fromkeys(wanted, exc.reason), "manual")
    return records.media_insights(owner, result.node, result.metrics, result.unavailable, "manual")
