"""``igrelay web``: the production web server, gunicorn serving the webhook app as the Procfile does."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import config
from config.settings import Settings

APP = "webhook:create_app()"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``web`` parser to ``sub``."""
    parser = sub.add_parser(
        "web",
        help="run the production web server (gunicorn), as the Procfile does",
        description="Serve the webhook app with gunicorn on 0.0.0.0:$PORT (config/gunicorn.conf.py), run by "
        "igrelay's own Python, so no activated virtualenv is needed.",
    )
    parser.set_defaults(handler=cmd_web)


def gunicorn_argv(bind: str | None = None) -> list[str]:
    """gunicorn run by this interpreter (no ``gunicorn`` needed on PATH) with igrelay's config."""
    conf = Path(config.__file__).resolve().parent / "gunicorn.conf.py"
    where = ["--bind", bind] if bind else []
    return [sys.executable, "-m", "gunicorn", "--config", str(conf), *where, APP]


def cmd_web(args: argparse.Namespace, settings: Settings) -> int:
    """Replace this process with gunicorn serving the webhook app."""
    settings.require_web()
    argv = gunicorn_argv()
    os.execv(argv[0], argv)  # nosec B606 - our own interpreter, a fixed argument list
    return 0  # not reached
