"""``igrelay failed list | replay``: the dead letters (failed jobs and refused inbox entries)."""

from __future__ import annotations

import argparse

from config.settings import Settings
from igrelay.commands.common import CommandError, Progress, connect, print_json, table

PASSES = 20  # replaying N jobs takes at most this many passes over the failed-job registries


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``failed`` parser and its ``list`` and ``replay`` actions to ``sub``."""
    parser = sub.add_parser(
        "failed",
        help="show and re-run failed fetches, sink deliveries and refused webhook deliveries",
        description="Jobs whose retries ran out (or whose sink failed for good) wait in RQ's failed-job "
        "registries; webhook deliveries the worker refused (an account or media id that is not numeric, a "
        "time out of range, an unreadable body) wait in a dead-letter stream, listed as inbox-ID. 'list' "
        "shows them; 'replay' requeues jobs with fresh retries (and re-enables a sink that answered 410 "
        "Gone) and puts deliveries back into the inbox. Records already delivered to a sink are never sent "
        "to it twice.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="show the dead letters", description="Dead letters, oldest first.")
    listing.add_argument("--sink", metavar="NAME", help="only deliveries to this sink (its name, or its URL)")
    listing.add_argument("--json", action="store_true", help="one JSON line per dead letter")
    listing.set_defaults(handler=cmd_list)
    replay = actions.add_parser(
        "replay",
        help="requeue dead letters with fresh retries",
        description="Requeue all dead letters, one sink's (--sink), or the given JOB_IDs, with fresh retries. "
        "A running 'igrelay worker' then works them.",
    )
    replay.add_argument("--sink", metavar="NAME", help="only deliveries to this sink (its name, or its URL)")
    replay.add_argument("job_ids", nargs="*", metavar="JOB_ID", help="ids from 'igrelay failed list'")
    replay.set_defaults(handler=cmd_replay)


def sink_name(settings: Settings, given: str | None) -> str | None:
    """The sink's name for ``given`` (a name from ``failed list``, or a configured URL)."""
    if not given:
        return None
    from workers import sinks

    for name, (url, _options) in sinks.configured(settings).items():
        if given in (name, url):
            return name
    return given  # a sink no longer configured can still have dead letters


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """Print the dead letters as a table (or JSON lines)."""
    from workers.failed import list_failed

    redis = connect(settings)
    items = list_failed(redis, sink=sink_name(settings, args.sink))
    redis.close()
    if args.json:
        for item in items:
            print_json(item)
        return 0
    rows = [
        [i["id"], i["failed_at"] or "", i["sink"] or i["function"], i["records"] or "", i["attempts"], _error(i)]
        for i in items
    ]
    if rows:
        table(rows, ["JOB_ID", "FAILED_AT", "SINK/JOB", "RECORDS", "ATTEMPTS", "ERROR"])
    print(f"{_n(len(items))}" + ("" if not items else "; replay with: igrelay failed replay [JOB_ID ...]"))
    return 0


def _n(count: int) -> str:
    return f"{count} dead letter{'s' * (count != 1)}"


def _error(item: dict) -> str:
    return ": ".join(p for p in (item.get("exception"), item.get("message")) if p)


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Requeue the chosen dead letters, with a progress display when there are many."""
    from workers.failed import list_failed, replay

    redis = connect(settings)
    sink = sink_name(settings, args.sink)
    wanted = [i["id"] for i in list_failed(redis, sink=sink)]
    if args.job_ids:
        unknown = sorted(set(args.job_ids) - set(wanted))
        if unknown:
            redis.close()
            raise CommandError(f"not a dead letter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
        wanted = list(dict.fromkeys(args.job_ids))
    progress, count = Progress("replaying", len(wanted)), 0
    step = max(50, -(-len(wanted) // PASSES))
    for start in range(0, len(wanted), step):
        chunk = wanted[start : start + step]
        count += replay(redis, sink=sink, job_ids=chunk, settings=settings)
        progress.advance(len(chunk))
    progress.close()
    redis.close()
    print(f"{_n(count)} requeued" + (f" for sink {sink}" if sink else ""))
    return 0
