"""``igrelay fetch MEDIA_ID``: one media's insights now, with whichever configured token can see it."""

from __future__ import annotations

import argparse
from typing import Any

from redis import Redis

from config import accounts as registry
from config.settings import Settings
from igrelay.commands.common import CommandError, explain, optional_redis, print_json
from workers import records
from workers.graph import AuthError, GraphError, TerminalError
from workers.graph_client import GraphClient, open_client


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``fetch`` parser to ``sub``."""
    parser = sub.add_parser(
        "fetch",
        help="fetch one media's insights now and print the record",
        description="Fetch MEDIA_ID's metadata and insights from the Graph API now and print the "
        "media_insights record (pretty on a terminal, one JSON line when piped). The record is not "
        "sent to the sinks.",
    )
    parser.add_argument("media_id", metavar="MEDIA_ID", help="Instagram media id")
    parser.add_argument(
        "--account", metavar="ID", help="account whose token to use (default: try each configured token)"
    )
    parser.set_defaults(handler=cmd_fetch)


def cmd_fetch(args: argparse.Namespace, settings: Settings) -> int:
    """Print the record, or one line saying why there is none."""
    if not args.media_id.isdigit():
        raise CommandError(f"MEDIA_ID must be a number, got {args.media_id!r}")
    redis = optional_redis(settings)
    if args.account and not registry.token(redis, settings, args.account):
        raise CommandError(f"no access token for account {args.account}: set IG_ACCESS_TOKENS=ACCOUNT_ID=TOKEN")
    try:
        record = fetch_now(settings, args.media_id, account=args.account, redis=redis)
    except TerminalError as exc:
        if exc.reason != "gone":
            raise CommandError(explain(exc, args.account or "")) from None
        seen_by = f"account {args.account}" if args.account else "any configured token"
        raise CommandError(f"media {args.media_id} does not exist or is not visible to {seen_by}") from None
    except AuthError as exc:
        if args.account or exc.code is None:
            raise CommandError(explain(exc, args.account or "")) from None
        raise CommandError(f"no configured token could read media {args.media_id}; see `igrelay check`") from None
    except GraphError as exc:
        raise CommandError(explain(exc, args.account or "")) from None
    finally:
        if redis is not None:
            redis.close()
    print_json(record)
    return 0


def fetch_now(
    settings: Settings, media_id: str, account: str | None = None, redis: Redis | None = None
) -> dict[str, Any]:
    """Fetch one media's insights now and return its record, without sending it to the sinks.

    Without ``account`` each configured token is tried in turn until one can see the media.
    """
    candidates = [account] if account else [*registry.ids(redis, settings), *([""] if settings.access_token else [])]
    if not candidates:
        raise AuthError("no access token configured")
    error: GraphError = AuthError("no token could read this media")
    with open_client(settings, redis, pool=2) as client:
        for acc in candidates:
            try:
                return _fetch_record(client, settings, acc, media_id)
            except (AuthError, TerminalError) as exc:
                if isinstance(exc, TerminalError) and exc.reason != "gone":
                    raise
                error = exc  # gone here may mean "another account's media": try the next token
    raise error


def _fetch_record(client: GraphClient, settings: Settings, account: str, media_id: str) -> dict[str, Any]:
    fields = {"fields": "id,media_type,media_product_type,permalink,timestamp,owner"}
    node = client.get(account, media_id, fields)
    owner = account or str((node.get("owner") or {}).get("id") or "unknown")
    try:
        result = client.media(account, media_id, node.get("media_product_type") or "FEED", node.get("media_type"))
    except TerminalError as exc:
        return records.terminal_insights(settings, owner, node, exc.reason, "manual")
    return records.media_insights(owner, result.node, result.metrics, result.unavailable, "manual")
