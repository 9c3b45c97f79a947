"""``igrelay worker``: the production RQ worker with the scheduler, as the Procfile runs it."""

from __future__ import annotations

import argparse

from config.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``worker`` parser to ``sub``."""
    parser = sub.add_parser(
        "worker",
        help="run the production RQ worker with the scheduler",
        description="Run an RQ HerokuWorker with the scheduler on igrelay's queue.",
    )
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--name", help="worker name (default: RQ picks one)")
    parser.set_defaults(handler=cmd_worker)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run the RQ worker with the scheduler on igrelay's queue."""
    from workers.runner import run_worker

    run_worker(settings, burst=args.burst, name=args.name)
    return 0
