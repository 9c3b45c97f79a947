"""The ``igrelay`` command: the parser and ``main``; each sub-command lives in ``igrelay.commands``.

Every sub-command reads ``Settings`` once; a ``ConfigError`` or any ``CommandError`` ends the
process with one line on stderr and exit status 2 (1 for failed checks), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from config.settings import ConfigError, Settings
from igrelay import commands
from igrelay.commands.common import CommandError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    parser = argparse.ArgumentParser(
        prog="igrelay",
        description="Meta (Instagram) webhooks in, fresh Instagram insights out, to the sinks you choose.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
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
