"""``python -m igrelay.sandbox --port N [--latency S] [--accounts N] [--login-type T] [--history N]``: serve
until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading

from igrelay.sandbox import Sandbox, demo_data
from igrelay.sandbox.data import HISTORY_MEDIA
from igrelay.sandbox.server import DEFAULT_APP_ID, DEFAULT_APP_SECRET


def main(argv: list[str] | None = None) -> int:
    """Parse the options, serve, stop cleanly on a signal."""
    parser = argparse.ArgumentParser(
        prog="python -m igrelay.sandbox",
        description="A local sandbox of Meta's Instagram Graph API.",
        epilog="Each demo account's token is IGAAsandbox<account id> (Instagram Login), e.g. "
        "IGAAsandbox17841400000000001, or its Page token EAAsandboxPage<account id> (Facebook Login).",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--accounts", type=int, default=2, help="number of demo accounts")
    parser.add_argument("--api-version", default="v25.0", help="version used in paging links")
    parser.add_argument("--login-type", choices=["instagram", "facebook"], default="instagram", help="host to play")
    parser.add_argument("--app-id", default=DEFAULT_APP_ID, help="the app id the login flow accepts")
    parser.add_argument("--app-secret", default=DEFAULT_APP_SECRET, help="the app secret the token endpoints check")
    parser.add_argument("--redirect-uri", action="append", default=[], help="a redirect URI the login flow accepts")
    parser.add_argument("--history", type=int, default=HISTORY_MEDIA, help="older media per demo account")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    data = demo_data(args.accounts, history=args.history, login_type=args.login_type)
    sandbox = Sandbox(
        data,
        latency=args.latency,
        version=args.api_version,
        port=args.port,
        login_type=args.login_type,
        app_id=args.app_id,
        app_secret=args.app_secret,
        redirect_uris=args.redirect_uri,
    )
    with sandbox:
        print(f"sandbox Graph API on {sandbox.url}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
