"""Which sinks are configured and what they are called, for the worker that delivers and the web
console that shows them (neither needs a sink's driver for this)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from config.settings import Settings

Configured = dict[str, tuple[str, Mapping[str, Any]]]


def sink_name(url: str) -> str:
    """A stable, secret-free name for a sink URL (used in job arguments, logs and metrics)."""
    scheme = urlsplit(url).scheme or "sink"
    return f"{scheme}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"


def configured(settings: Settings) -> Configured:
    """``{name: (url, options)}`` from ``IGRELAY_SINKS`` plus the TOML ``[sinks.NAME]`` tables."""
    out: Configured = {}
    tables = settings.section("sinks")
    by_url = {t.get("url"): (n, t) for n, t in tables.items() if isinstance(t, Mapping)}
    for url in settings.sinks:
        name, options = by_url.get(url, (sink_name(url), {}))
        out[name] = (url, options)
    for name, table in tables.items():
        if isinstance(table, Mapping) and table.get("url") and name not in out:
            out[name] = (str(table["url"]), table)
    return out


def scheme(url: str) -> str:
    """The URL's scheme, lower case."""
    return urlsplit(url).scheme.lower()
