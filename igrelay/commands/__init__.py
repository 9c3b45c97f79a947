"""Sub-commands beyond ``web`` and ``worker``, one module each; ``register`` adds their parsers."""

from __future__ import annotations

import argparse
import importlib

COMMANDS = ("dev", "simulate", "fetch", "subscribe", "check", "failed")  # the order of `igrelay --help`


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add every sub-command's parser to ``sub``."""
    for name in COMMANDS:  # imported here, so importing one helper module does not import them all
        importlib.import_module(f"igrelay.commands.{name}").register(sub)
