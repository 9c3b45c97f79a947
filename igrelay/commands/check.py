"""``igrelay check``: configuration, Redis, workers, tokens, sinks and webhooks, as OK / problem lines."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from redis import Redis

from config.logs import redact, register_secrets, settings_secrets
from config.settings import ConfigError, Settings, redact_url
from igrelay import check
from igrelay.check import Row

MARKS = {"ok": "OK", "warn": "WARN", "problem": "PROBLEM"}
HTTP_SCHEMES = {"http", "https", "slack"}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``check`` parser to ``sub``."""
    parser = sub.add_parser(
        "check",
        help="check configuration, Redis, tokens and sinks",
        description="Check the configuration, Redis (answers; eviction policy), the workers, each access "
        "token against the Graph API (valid, whose, expiry when known, fetches stopped), each sink "
        "(reachable, allowed), and the subscription watchdog. Prints OK / WARN / PROBLEM lines with "
        "what to do; exit 1 when there is a problem. Never prints a secret.",
    )
    parser.set_defaults(handler=cmd_check)


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """Run every check, print the report, exit 1 on a problem."""
    register_secrets(settings_secrets(settings))
    rows = check.config_rows(settings)
    redis_rows, redis = check.redis_rows(settings)
    rows += redis_rows
    if redis is not None:
        rows += check.worker_rows(redis)
    rows += check.token_rows(settings, redis)
    rows += sink_rows(settings, redis)
    if redis is not None:
        rows += check.watchdog_rows(settings, redis)
        redis.close()
    render(rows)
    return 1 if any(r.status == "problem" for r in rows) else 0


def render(rows: list[Row]) -> None:
    """One line per row; a problem's fix on the next line."""
    width = max(len(r.area) for r in rows)
    for row in rows:
        print(f"{MARKS[row.status]:<8} {row.area:<{width}}  {redact(row.text)}")
        if row.fix:
            print(f"{'':<8} {'':<{width}}  -> {redact(row.fix)}")
    problems = sum(r.status == "problem" for r in rows)
    warnings = sum(r.status == "warn" for r in rows)
    print(f"{problems} problem{'s' * (problems != 1)}, {warnings} warning{'s' * (warnings != 1)}")
    sys.stdout.flush()


def sink_rows(settings: Settings, redis: Redis | None) -> list[Row]:
    """Each configured sink: it loads, it is not disabled, it can be reached."""
    from workers import sinks

    rows = []
    for name, (url, options) in sinks.configured(settings).items():
        label = f"{name} ({_label(url)})"
        problem = _probe(url, options, settings)
        if problem:
            rows.append(Row("problem", "sink", f"{label}: {problem[0]}", problem[1]))
        elif redis is not None and _disabled(redis, name):
            fix = f"fix the destination, then `igrelay failed replay --sink {name}`"
            rows.append(Row("problem", "sink", f"{label}: disabled after it answered 410 Gone", fix))
        else:
            rows.append(Row("ok", "sink", f"{label} reachable"))
    return rows


def _label(url: str) -> str:
    """A URL safe to print: HTTP sinks keep only scheme, host and port (their paths can be secrets)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in HTTP_SCHEMES:
        return redact_url(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}" + ("/…" if parts.path.strip("/") else "")


def _disabled(redis: Redis, name: str) -> bool:
    from workers.sinks import ledger

    return ledger.is_disabled(redis, name)


def _probe(url: str, options: Mapping[str, Any], settings: Settings) -> tuple[str, str] | None:
    """(problem, fix) when the sink cannot be built or reached; None when it can."""
    from workers import sinks

    try:
        sink = sinks.load(url, options, settings)
    except (ConfigError, ValueError) as exc:
        text = redact(str(exc)) if isinstance(exc, ConfigError) else type(exc).__name__
        return f"invalid ({text})", "fix the URL in IGRELAY_SINKS (or its [sinks] table)"
    try:
        return _reach(sink, url, settings, options)
    finally:
        sink.close()


def _reach(sink: Any, url: str, settings: Settings, options: Mapping[str, Any]) -> tuple[str, str] | None:
    """Send nothing: SQL, file and stream sinks connect (and create their tables); HTTP sinks pass the SSRF guard."""
    from workers.sinks import SinkError, netguard

    parts = urlsplit(url)
    try:
        if parts.scheme.lower() not in HTTP_SCHEMES:
            sink.send([])
        elif not (settings.sink_allow_private or options.get("allow_private")):
            netguard.checked_addresses(parts.hostname or "", parts.port or (80 if parts.scheme == "http" else 443))
    except netguard.BlockedAddress:
        return "its host is a private or loopback address", "use a public host, or set IGRELAY_SINK_ALLOW_PRIVATE=true"
    except SinkError as exc:
        return f"unreachable ({redact(str(exc))})", "check the address, the credentials and that it is running"
    except ImportError:
        return "its driver is not installed", "pip install 'igrelay[postgres]'"
    except OSError as exc:
        return f"unreachable ({type(exc).__name__}: {exc.strerror or 'name does not resolve'})", "check the host name"
    except Exception as exc:  # a driver error: its text may hold the URL
        return f"unreachable ({type(exc).__name__})", "check the address, the credentials and that it is running"
    return None
