"""The ``igrelay`` command (CONTRACT.md section 6).

Every sub-command reads ``Settings`` once; a ``ConfigError`` or any ``CommandError`` ends the
process with one line on stderr and exit status 2 (1 for failed checks), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from config.settings import ConfigError, Settings
from igrelay.commands.common import CommandError


def cmd_web(args: argparse.Namespace, settings: Settings) -> int:
    """Replace this process with gunicorn serving the webhook app, as the Procfile does."""
    settings.require_web()
    conf = Path(__file__).resolve().parent.parent / "config" / "gunicorn.conf.py"
    os.execvp("gunicorn", ["gunicorn", "--config", str(conf), "webhook:create_app()"])
    return 0  # not reached


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run the RQ worker with the scheduler on igrelay's queue."""
    from workers.runner import run_worker

    run_worker(settings, burst=args.burst, name=args.name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    from igrelay import commands

    parser = argparse.ArgumentParser(
        prog="igrelay",
        description="Meta (Instagram) webhooks in, fresh Instagram insights out, to the sinks you choose.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    web = sub.add_parser(
        "web",
        help="run the production web server (gunicorn), as the Procfile does",
        description="Serve the webhook app with gunicorn on 0.0.0.0:$PORT (config/gunicorn.conf.py).",
    )
    web.set_defaults(handler=cmd_web)
    worker = sub.add_parser(
        "worker",
        help="run the production RQ worker with the scheduler",
        description="Run an RQ HerokuWorker with the scheduler on igrelay's queue.",
    )
    worker.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    worker.add_argument("--name", help="worker name (default: RQ picks one)")
    worker.set_defaults(handler=cmd_worker)
    commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``igrelay`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        return int(args.handler(args, settings) or 0)
    except (ConfigError, CommandError) as exc:
        print(f"igrelay {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
