"""A module a planted job names: importing it leaves a mark, so a test sees whether the worker imported it."""

from __future__ import annotations

import os
from pathlib import Path

Path(os.environ.get("IGRELAY_TEST_PLANTED_MARK", "/dev/null")).write_text("imported")


def run(path: str) -> None:
    """What the planted job would do: leave another mark."""
    Path(path).write_text("ran")
