"""``igrelay subscribe``: subscribe each configured account to webhook fields and show the result."""

from __future__ import annotations

import argparse

from config.logs import register_secrets, settings_secrets
from config.settings import Settings
from igrelay.commands.common import CommandError, explain, optional_redis, table
from workers import subscriptions
from workers.graph import GraphError
from workers.graph_client import GraphClient, open_client


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``subscribe`` parser to ``sub``."""
    parser = sub.add_parser(
        "subscribe",
        help="subscribe the configured accounts to webhook fields",
        description="Per account (environment, connected, and [accounts.<IG_ID>] tables): with Instagram "
        "Login (graph.instagram.com) POST /me/subscribed_apps with the account's token; with Facebook Login "
        "(graph.facebook.com) POST /{page-id}/subscribed_apps with the Page token the login flow gave, or "
        "page_id/page_token from [accounts.<IG_ID>] in the IGRELAY_CONFIG file. The app-level webhook "
        "(callback URL, verify token, fields) is set in the Meta App Dashboard first. Prints one line per "
        "account; exit 1 if any failed.",
    )
    parser.add_argument(
        "--fields",
        type=_csv,
        help="comma-separated fields (default: [subscribe] fields in the config, else comments,live_comments "
        "for Instagram Login and feed for a Page)",
    )
    parser.set_defaults(handler=cmd_subscribe)


def _csv(raw: str) -> list[str]:
    fields = [f.strip() for f in raw.split(",") if f.strip()]
    if not fields:
        raise argparse.ArgumentTypeError("give at least one field")
    return fields


def cmd_subscribe(args: argparse.Namespace, settings: Settings) -> int:
    """Subscribe every account; print a table; exit 1 on any problem."""
    register_secrets(settings_secrets(settings))
    redis = optional_redis(settings)
    accounts = subscriptions.accounts(settings, redis)
    if not accounts:
        raise CommandError("no accounts configured: set IG_ACCESS_TOKENS=ACCOUNT_ID=TOKEN (or IG_ACCESS_TOKEN)")
    fields = subscriptions.fields_for(settings, args.fields)
    rows = []
    with open_client(settings, redis, pool=2) as client:
        for account in accounts:
            rows.append([account or "(IG_ACCESS_TOKEN)", ",".join(fields), _one(client, settings, account, fields)])
    if redis is not None:
        redis.close()
    table(rows, ["ACCOUNT", "FIELDS", "RESULT"])
    failed = sum(1 for row in rows if row[2] != "OK")
    print(f"{len(rows) - failed} of {len(rows)} accounts subscribed")
    return 1 if failed else 0


def _one(client: GraphClient, settings: Settings, account: str, fields: list[str] | tuple[str, ...]) -> str:
    """``OK`` or the problem, with what to do."""
    where = subscriptions.target(client, settings, account)
    if where.missing:
        return where.missing
    try:
        subscriptions.subscribe(client, where, fields)
    except GraphError as exc:
        return explain(exc, account)
    return "OK"
