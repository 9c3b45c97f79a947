"""``igrelay accounts [connect | pause | resume | remove ID]``: every account, and how to add and steer one."""

from __future__ import annotations

import argparse
import time

from config import accounts, login
from config.settings import Settings, parse_duration
from igrelay.commands.common import CommandError, connect, print_json, table

HEADERS = [
    "ID",
    "USERNAME",
    "SOURCE",
    "LOGIN",
    "TOKEN EXPIRES",
    "SUBSCRIBED",
    "LAST DELIVERY",
    "STATE",
    "GRAPH CALLS/H",
    "BACKFILL",
]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``accounts`` parser and its actions to ``sub``."""
    parser = sub.add_parser(
        "accounts",
        help="list every account (environment and connected); connect, pause, resume or remove one",
        description="Accounts come from IG_ACCESS_TOKENS (source env) and from Meta's login flow (source "
        "connected, tokens sealed in Redis with IGRELAY_SECRET_KEY). Without an action: one line per account "
        "with its login type, token expiry, subscribed webhook fields, last delivery, state (active, paused, "
        "needs_reconnect), Graph calls in the last whole clock hour (and this one so far; Meta allows 4,800 x the "
        "account's impressions per 24 h) and backfill progress.",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per account")
    parser.set_defaults(handler=cmd_list)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    link = actions.add_parser(
        "connect",
        help="print a single-use login URL (valid 1 h) to connect an account in a browser",
        description="Prints, on a line of its own, a single-use URL valid for one hour: open it in a browser, "
        "log in with Meta and pick the account(s). Needs META_APP_ID, META_APP_SECRET, IGRELAY_PUBLIC_URL and "
        "IGRELAY_SECRET_KEY, and the web process running at IGRELAY_PUBLIC_URL.",
    )
    link.set_defaults(handler=cmd_connect)
    for name, text in (
        ("pause", "hold an account's fetches, polls and backfill (until resumed, or --for a while)"),
        ("resume", "let a paused account's work run again"),
        ("remove", "forget a connected account: its work stops and its token is deleted"),
    ):
        action = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        action.add_argument("account", metavar="ID", help="the Instagram account id")
        if name == "pause":
            action.add_argument("--for", dest="seconds", metavar="DURATION", help="e.g. 6h; default: until resumed")
        action.set_defaults(handler=cmd_change, verb=name)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """Print every account of the registry."""
    redis = connect(settings)
    found = [accounts.describe(redis, settings, a) for a in accounts.ids(redis, settings)]
    if args.json:
        for row in found:
            print_json(row)
        return 0
    if not found:
        print("no accounts: run `igrelay accounts connect`, or set IG_ACCESS_TOKENS=ACCOUNT_ID=TOKEN")
        return 0
    table([_row(a) for a in found], HEADERS)
    return 0


def _row(a: dict) -> list[str]:  # type: ignore[type-arg]
    return [
        a["id"],
        f"@{a['username']}" if a["username"] else "",
        a["source"],
        a["login_type"],
        _day(a["token_expires"]) if a["token_expires"] else "unknown",
        ",".join(a["subscribed"]) or "-",
        _day(a["last_delivery"]) if a["last_delivery"] else "never",
        state(a),
        f"{a['graph_calls']['last_hour']} (now {a['graph_calls']['this_hour']})",
        progress(a["backfill"]),
    ]


def state(a: dict) -> str:  # type: ignore[type-arg]
    """``needs_reconnect``, ``paused``, ``paused until ...`` or ``active``."""
    if a["needs_reconnect"]:
        return "needs_reconnect"
    if a["paused_forever"]:
        return "paused"
    return f"paused until {_day(a['paused_until'])}" if a["paused_until"] else "active"


def progress(b: dict | None) -> str:  # type: ignore[type-arg]
    """A backfill's progress in a few words."""
    if not b:
        return "-"
    found = f"{b['media_found']}{'' if b['listed'] else '+'}"  # + while the listing goes on
    done = f"media {b['media_done']}/{found}, days {b['days_done']}/{b['days_wanted']}"
    if b["state"] == "done":
        return f"done ({done})"
    eta = f", ETA {b['eta_seconds'] // 60 + 1} min" if b["eta_seconds"] is not None else ""
    return f"running ({done}{eta})"


def _day(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(epoch)))


def cmd_connect(args: argparse.Namespace, settings: Settings) -> int:
    """Print a single-use /connect URL on a line of its own."""
    if settings.login_off:
        raise CommandError(settings.login_off)
    redis = connect(settings)
    print(login.new_link(redis, settings))
    return 0


def cmd_change(args: argparse.Namespace, settings: Settings) -> int:
    """Pause, resume or remove one account."""
    redis = connect(settings)
    try:
        account = accounts.require(redis, settings, args.account)
        if args.verb == "pause":
            seconds = parse_duration("--for", args.seconds) if args.seconds else None
            accounts.pause(redis, account, seconds)
        elif args.verb == "resume":
            accounts.resume(redis, account)
        else:
            accounts.remove(redis, settings, account)
    except accounts.AccountError as exc:
        raise CommandError(str(exc)) from None
    print(f"account {account}: {args.verb}d" if args.verb != "pause" else f"account {account}: paused")
    return 0
