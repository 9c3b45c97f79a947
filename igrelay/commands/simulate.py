"""``igrelay simulate FIELD``: a correctly signed sample delivery to a running igrelay."""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import requests

from config.settings import Settings
from igrelay import payloads
from igrelay.commands.common import CommandError

DEMO_ACCOUNT = "17841400000000001"
DEMO_MEDIA = "18000000000000001"  # the first demo account's feed image in the sandbox (igrelay dev)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``simulate`` parser to ``sub``."""
    sim = sub.add_parser(
        "simulate",
        help="send a correctly signed sample delivery to a running igrelay",
        description="Send a realistic delivery of FIELD, signed with the first META_APP_SECRET, "
        "to a running igrelay and print what was sent and the answer.",
    )
    sim.add_argument("field", metavar="FIELD", choices=payloads.FIELDS, help=", ".join(payloads.FIELDS))
    sim.add_argument("--url", help="webhook URL (default http://127.0.0.1:$PORT/webhook)")
    sim.add_argument("--account", default=DEMO_ACCOUNT, help="Instagram account id (entry.id)")
    sim.add_argument("--media", default=DEMO_MEDIA, help="media id the changes are about")
    sim.add_argument("--count", type=int, default=1, help="changes per delivery (default 1)")
    sim.add_argument("--burst", type=int, default=1, metavar="N", help="send N deliveries, 8 at a time")
    sim.set_defaults(handler=cmd_simulate)


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """Sign and POST sample deliveries; exit 1 unless every answer is 200."""
    if not settings.app_secrets:
        raise CommandError("META_APP_SECRET: not set; simulate signs deliveries with it")
    if args.count < 1 or args.burst < 1:
        raise CommandError("--count and --burst must be at least 1")
    url = args.url or f"http://127.0.0.1:{settings.port}/webhook"
    secret = settings.app_secrets[0]

    def send(_: int) -> int:
        body = payloads.encode(payloads.delivery(args.field, args.account, args.media, args.count))
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": payloads.sign(body, secret)}
        try:
            return requests.post(url, data=body, headers=headers, timeout=10).status_code
        except requests.RequestException as exc:
            raise CommandError(f"cannot reach {url} ({type(exc).__name__}); is igrelay running?") from None

    if args.burst == 1:
        sample = payloads.delivery(args.field, args.account, args.media, args.count)
        print(json.dumps(sample, indent=2, ensure_ascii=False))
        statuses = [send(0)]
    else:
        with ThreadPoolExecutor(8) as pool:
            statuses = []
            for i, status in enumerate(pool.map(send, range(args.burst)), 1):
                statuses.append(status)
                if sys.stderr.isatty():
                    print(f"\rsent {i}/{args.burst}", end="", file=sys.stderr)
        if sys.stderr.isatty():
            print(file=sys.stderr)
    ok = statuses.count(200)
    print(
        f"{ok}/{len(statuses)} deliveries answered 200 by {url}"
        + ("" if ok == len(statuses) else f" (others: {sorted(set(statuses) - {200})})")
    )
    return 0 if ok == len(statuses) else 1
