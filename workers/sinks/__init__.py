"""Sinks: one small interface, one module per sink, loaded lazily by URL scheme.

Exceptions, mapped to retry policy in ``workers.delivery``::

    SinkError            retry this delivery later (``retry_after`` seconds when the sink said so)
     └── PermanentSinkError   do not retry; the delivery is dead-lettered at once
          └── SinkGone         the destination asked to be removed (HTTP 410): the sink is disabled

Every ``SinkError`` carries ``done``: ids of records that got through (or, for at-most-once sinks,
may have) before the failure, so a retry never sends them again to a non-idempotent sink.
Exception texts never hold a sink URL: callers store them in Redis and logs.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from config.settings import ConfigError, Settings

Record = dict[str, Any]

# Dotted paths, so optional drivers (psycopg) are imported only when a sink uses them.
REGISTRY = {
    "stdout": "workers.sinks.stdout:StdoutSink",
    "file": "workers.sinks.file:FileSink",
    "memory": "workers.sinks.memory:MemorySink",
    "sqlite": "workers.sinks.sqlite:SqliteSink",
    "postgresql": "workers.sinks.postgres:PostgresSink",
    "postgres": "workers.sinks.postgres:PostgresSink",
    "http": "workers.sinks.http:HttpSink",
    "https": "workers.sinks.http:HttpSink",
    "slack": "workers.sinks.slack:SlackSink",
    "redis": "workers.sinks.stream:StreamSink",
    "rediss": "workers.sinks.stream:StreamSink",
}


class SinkError(Exception):
    """A delivery failed and may succeed later."""

    def __init__(self, message: str, retry_after: float | None = None, done: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.done = tuple(done)


class PermanentSinkError(SinkError):
    """A delivery failed in a way retrying cannot fix."""


class SinkGone(PermanentSinkError):
    """The destination said it is gone for good; the sink is disabled until replayed."""


class Sink:
    """The interface: ``send`` stores every record or raises; ``close`` frees resources."""

    #: True when sending the same record id twice stores it once (SQL, Redis streams).
    idempotent: ClassVar[bool] = False
    #: True when a record whose send was attempted must never be sent again (Slack): records are
    #: claimed before sending, and a send that may have happened keeps its claim.
    at_most_once: ClassVar[bool] = False
    #: Set by the delivery layer on at-most-once sinks: claims a record id just before it is sent.
    claim: Callable[[str], bool] | None = None

    def __init__(self, url: str, options: Mapping[str, Any], settings: Settings) -> None:
        self.url = url
        self.options = options
        self.settings = settings

    def send(self, records: Sequence[Record]) -> None:
        """Deliver ``records`` (all of them, or raise ``SinkError``)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections and files."""


def sink_name(url: str) -> str:
    """A stable, secret-free name for a sink URL (used in job arguments, logs and metrics)."""
    scheme = urlsplit(url).scheme or "sink"
    return f"{scheme}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"


def configured(settings: Settings) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """``{name: (url, options)}`` from ``IGRELAY_SINKS`` plus the TOML ``[sinks.NAME]`` tables."""
    out: dict[str, tuple[str, Mapping[str, Any]]] = {}
    tables = settings.section("sinks")
    by_url = {t.get("url"): (n, t) for n, t in tables.items() if isinstance(t, Mapping)}
    for url in settings.sinks:
        name, options = by_url.get(url, (sink_name(url), {}))
        out[name] = (url, options)
    for name, table in tables.items():
        if isinstance(table, Mapping) and table.get("url") and name not in out:
            out[name] = (str(table["url"]), table)
    return out


def sink_class(url: str) -> type[Sink]:
    """The sink class registered for ``url``'s scheme (importing its module, and so its driver)."""
    scheme = urlsplit(url).scheme.lower()
    path = REGISTRY.get(scheme)
    if path is None:
        raise ConfigError(f"IGRELAY_SINKS: unknown sink scheme {scheme!r} (one of {', '.join(sorted(REGISTRY))})")
    module_name, _, class_name = path.partition(":")
    cls: type[Sink] = getattr(importlib.import_module(module_name), class_name)
    return cls


def load(url: str, options: Mapping[str, Any], settings: Settings) -> Sink:
    """Instantiate the sink class registered for ``url``'s scheme."""
    return sink_class(url)(url, options, settings)
