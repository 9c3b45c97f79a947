"""``igrelay backfill [--account ID] [--since 90d] [--status]``: fetch accounts' history, or show its progress."""

from __future__ import annotations

import argparse

from config import accounts
from config.settings import Settings, parse_duration
from igrelay.commands.accounts import progress
from igrelay.commands.common import CommandError, connect, print_json, table
from workers import backfill


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``backfill`` parser to ``sub``."""
    parser = sub.add_parser(
        "backfill",
        help="fetch the history of accounts' media and account insights (--status: progress)",
        description="Every media an account published since --since (paged /media) gets one fetch, and its "
        "account insights each past day since then; at most 2 years back. A running worker does the work at a "
        "pace that leaves live work first, resumes after a restart, and never fetches twice what a backfill "
        "already fetched. --status shows media done/found, days done/wanted and an ETA.",
    )
    parser.add_argument("--account", metavar="ID", help="only this account (default: every account)")
    parser.add_argument("--since", default="90d", metavar="DURATION", help="how far back (default 90d, at most 730d)")
    parser.add_argument("--status", action="store_true", help="show progress instead of starting")
    parser.add_argument("--json", action="store_true", help="with --status: one JSON object per account")
    parser.set_defaults(handler=cmd_backfill)


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    """Start backfills, or print their progress."""
    redis = connect(settings)
    try:
        chosen = [accounts.require(redis, settings, args.account)] if args.account else accounts.ids(redis, settings)
    except accounts.AccountError as exc:
        raise CommandError(str(exc)) from None
    if not chosen:
        raise CommandError("no accounts: run `igrelay accounts connect`, or set IG_ACCESS_TOKENS")
    if args.status:
        found = [(a, backfill.status(redis, a)) for a in chosen]
        if args.json:
            for account, state in found:
                print_json(state or {"account": account, "state": "none"})
        else:
            table([[a, progress(s)] for a, s in found], ["ACCOUNT", "BACKFILL"])
        return 0
    days = parse_duration("--since", args.since) // 86400
    if days < 1 or days > backfill.MAX_DAYS:
        raise CommandError(f"--since must be between 1d and {backfill.MAX_DAYS}d, got {args.since}")
    for account in chosen:
        backfill.start(redis, settings, account, days)
        print(f"account {account}: backfill of the last {days} days started; see `igrelay backfill --status`")
    return 0
