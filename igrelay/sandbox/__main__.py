"""``python -m igrelay.sandbox --port N [--latency S] [--accounts N]``: serve until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading

from igrelay.sandbox import Sandbox, demo_data


def main(argv: list[str] | None = None) -> int:
    """Parse the options, serve, stop cleanly on a signal."""
    parser = argparse.ArgumentParser(
        prog="python -m igrelay.sandbox",
        description="A local sandbox of Meta's Instagram Graph API.",
        epilog="Each demo account's token is IGAAsandbox<account id>, e.g. IGAAsandbox17841400000000001.",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--accounts", type=int, default=2, help="number of demo accounts")
    parser.add_argument("--api-version", default="v25.0", help="version used in paging links")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    sandbox = Sandbox(demo_data(args.accounts), latency=args.latency, version=args.api_version, port=args.port)
    with sandbox:
        print(f"sandbox Graph API on {sandbox.url}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
