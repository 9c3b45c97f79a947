"""The ``igrelay`` sub-commands, one module each; ``register`` adds their parsers.

Each command module has ``register(sub)``, which adds its parser and sets ``handler`` to a
function ``(args, settings) -> exit status``. Shared helpers live in ``common`` (``CommandError``
among them); processes and ports in ``igrelay.procs``. Commands never import ``igrelay.cli``.
"""

from __future__ import annotations

import argparse
import importlib

COMMANDS = (
    "web",
    "worker",
    "dev",
    "simulate",
    "fetch",
    "subscribe",
    "check",
    "failed",
    "accounts",
    "backfill",
)  # `igrelay --help` order


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add every sub-command's parser to ``sub``."""
    for name in COMMANDS:  # imported here, so importing one helper module does not import them all
        importlib.import_module(f"igrelay.commands.{name}").register(sub)
