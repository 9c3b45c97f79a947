"""``igrelay fetch MEDIA_ID``: fetch one media's insights now and print the record."""

from __future__ import annotations

import argparse

from config.settings import Settings
from igrelay.commands.common import CommandError, explain, optional_redis, print_json
from workers.graph import AuthError, GraphError, TerminalError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
    from workers.fetch_now import fetch_now

    if not args.media_id.isdigit():
        raise CommandError(f"MEDIA_ID must be a number, got {args.media_id!r}")
    if args.account and not settings.token_for(args.account):
        raise CommandError(f"no access token for account {args.account}: set IG_ACCESS_TOKENS=ACCOUNT_ID=TOKEN")
    redis = optional_redis(settings)
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
