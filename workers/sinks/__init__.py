"""Sinks: one small interface, one module per sink, loaded lazily by URL scheme.

A sink module says everything about itself on its ``Sink`` subclass: the URL ``schemes`` it
serves, how its URL is shown in logs and ``igrelay check`` (``redact``), which strings in its
URL and options are secrets (``secrets``, taught to log redaction whenever the sink is
configured or loaded) and how ``igrelay check`` probes it (``probe``, sending nothing). So adding
a sink is one new module plus one ``REGISTRY`` line. Modules with a leading underscore
(``_ledger``, ``_netguard``, ``_tables``) are helpers, not sinks.

Exceptions, mapped to retry policy in ``workers.delivery``::

    SinkError            retry this delivery later (``retry_after`` seconds when the sink said so)
     └── PermanentSinkError   do not retry; the delivery is dead-lettered at once
          └── SinkGone         the destination asked to be removed (HTTP 410): the sink is disabled

Every ``SinkError`` carries ``done``: ids of records that got through (or, for at-most-once sinks,
may have) before the failure, so a retry never sends them again to a non-idempotent sink.
Exception texts never hold a sink URL: callers store them in Redis and logs.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from redis import Redis

from config import logs, sinkconf
from config.settings import ConfigError, Settings, redact_url
from config.sinkconf import sink_name as sink_name  # callers name sinks through this module

Record = dict[str, Any]

# A record's JSON as the SQL sinks store it (their ``data`` column): compact, non-ASCII kept as is.
record_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


class ReadRecord(dict[str, Any]):
    """A record read back from JSON text (the delivery outbox), with that text when it is exactly
    ``record_json`` of the record, so a sink that stores JSON does not encode it again."""

    __slots__ = ("json",)

    def __init__(self, record: Record, text: str) -> None:
        super().__init__(record)
        # The outbox's JSON is ASCII: without a \u escape it has no non-ASCII character (or control
        # character) that record_json would write differently. With one, the text is not reused.
        self.json: str | None = text if "\\u" not in text else None


class JsonRecord(str):
    """A record as the delivery outbox holds it: its JSON text (ASCII, ``\\u`` escapes kept), unparsed.
    Delivery hands these, not dicts, to a sink that sets ``reads_json``; only ``as_json`` reads them."""

    __slots__ = ()


def as_json(record: Record | JsonRecord) -> str:
    """The record's JSON text: ``record_json(record)``, reusing the text a ``ReadRecord`` was read from;
    a ``JsonRecord`` is its own text."""
    if isinstance(record, str):
        return record
    text = getattr(record, "json", None)
    return text if text is not None else record_json(record)


# scheme -> "module:Class". Dotted paths, so a sink's module (and its driver) is imported only when used.
REGISTRY: dict[str, str] = {
    "stdout": "workers.sinks.stdout:StdoutSink",
    "file": "workers.sinks.file:FileSink",
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


@dataclass(frozen=True)
class Finding:
    """One thing ``igrelay check`` says about a sink."""

    status: str  # "ok" | "warn" | "problem"
    text: str
    fix: str = ""


UNREACHABLE_FIX = "check the address, the credentials and that it is running"


class Sink:
    """The interface: ``send`` stores every record or raises; ``close`` frees resources."""

    #: The URL schemes this class serves; each has its ``REGISTRY`` line (a test holds the two together).
    schemes: ClassVar[tuple[str, ...]] = ()
    #: True when sending the same record id twice stores it once (SQL, Redis streams).
    idempotent: ClassVar[bool] = False
    #: True when a record whose send was attempted must never be sent again (Slack): records are
    #: claimed before sending, and a send that may have happened keeps its claim.
    at_most_once: ClassVar[bool] = False
    #: The most records one delivery job hands to ``send``. A backlog waiting in the sink's outbox is sent
    #: in sends this big: the SQL sinks pay per transaction, so they take many; a sink that sends record by
    #: record (HTTP, Slack) keeps a job short, so live work is not held up behind it.
    flush_records: ClassVar[int] = 500
    #: True when ``send`` reads nothing of a record but its JSON text (``as_json``): delivery then hands
    #: it the outbox's text unparsed (``JsonRecord``s), which saves a JSON parse a record. Idempotent
    #: sinks only (delivery reads record ids for the others).
    reads_json: ClassVar[bool] = False
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

    def probe(self) -> list[Finding]:
        """What ``igrelay check`` reports, sending no record; raises like ``send`` when unreachable."""
        self.send([])  # connects (and creates tables) without storing anything
        return [Finding("ok", "reachable")]

    @classmethod
    def redact(cls, url: str) -> str:
        """``url`` safe to print: no password, no query, a long path cut short."""
        return redact_url(url)

    @classmethod
    def secrets(cls, url: str, options: Mapping[str, Any]) -> list[str]:
        """Strings log redaction must hide: the whole URL and its password."""
        return [url, urlsplit(url).password or ""]


class LocalFileSink(Sink):
    """A sink that writes a file on this machine: its path says where records go and holds no secret."""

    #: The mode a file the sink creates gets; the mode argument of ``os.open`` can only be narrowed by
    #: the umask, so records are never world-readable whatever it is.
    file_mode: ClassVar[int] = 0o600

    @classmethod
    def redact(cls, url: str) -> str:
        """The whole path."""
        return redact_url(url, path_chars=None)

    @classmethod
    def secrets(cls, url: str, options: Mapping[str, Any]) -> list[str]:
        return []


def configured(settings: Settings) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """``{name: (url, options)}`` from ``IGRELAY_SINKS`` plus the TOML ``[sinks.NAME]`` tables.

    Each sink's secrets are taught to log redaction on the way."""
    out = sinkconf.configured(settings)
    for url, options in out.values():
        learn_secrets(url, options)
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
    """Instantiate the sink class registered for ``url``'s scheme (its secrets learnt first)."""
    cls = sink_class(url)
    logs.register_secrets(cls.secrets(url, options))
    return cls(url, options, settings)


def redact(url: str) -> str:
    """A sink URL safe to print, as its sink shows it (an unknown scheme: the generic way)."""
    try:
        return sink_class(url).redact(url)
    except ConfigError:
        return redact_url(url)


def secrets(url: str, options: Mapping[str, Any]) -> list[str]:
    """The strings of a sink's URL and options that must never be printed."""
    try:
        cls = sink_class(url)
    except ConfigError:
        cls = Sink
    return [s for s in cls.secrets(url, options) if s]


def learn_secrets(url: str, options: Mapping[str, Any]) -> None:
    """Teach log redaction a sink's secrets."""
    logs.register_secrets(secrets(url, options))


def probe(name: str, url: str, options: Mapping[str, Any], settings: Settings, redis: Redis | None) -> list[Finding]:
    """What ``igrelay check`` says about one sink: it loads, it can be reached, it is not disabled."""
    try:
        sink = load(url, options, settings)
    except (ConfigError, ValueError) as exc:
        text = logs.redact(str(exc)) if isinstance(exc, ConfigError) else type(exc).__name__
        return [Finding("problem", f"invalid ({text})", "fix the URL in IGRELAY_SINKS (or its [sinks] table)")]
    try:
        found = sink.probe()
    except Exception as exc:  # a driver error too: a sink's probe raises what its send would
        found = [unreachable(exc)]
    finally:
        sink.close()
    if any(f.status == "problem" for f in found) or redis is None:
        return found
    from workers.sinks import _ledger

    if _ledger.is_disabled(redis, name):
        fix = f"fix the destination, then `igrelay failed replay --sink {name}`"
        return [Finding("problem", "disabled after it answered 410 Gone", fix)]
    return found


def unreachable(exc: Exception) -> Finding:
    """The finding for a probe that raised; texts never hold the URL."""
    if isinstance(exc, SinkError):
        return Finding("problem", f"unreachable ({logs.redact(str(exc))})", UNREACHABLE_FIX)
    if isinstance(exc, OSError):
        text = f"unreachable ({type(exc).__name__}: {exc.strerror or 'name does not resolve'})"
        return Finding("problem", text, "check the host name")
    return Finding("problem", f"unreachable ({type(exc).__name__})", UNREACHABLE_FIX)  # its text may hold the URL
