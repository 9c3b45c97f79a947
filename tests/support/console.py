"""Helpers for the console tests and benchmark: settings with the console on, stored history, a login."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PASSWORD = "console-test-password"
SECRET_KEY = "console-test-secret-key-0123456789"
ACCOUNT = "17841400000000001"
MEDIA = "18000000000000001"


def console_env(tmp_path: Path, **overrides: Any) -> dict[str, str]:
    """Settings overrides: the console on, records in a SQLite file under ``tmp_path``."""
    env = {
        "IGRELAY_CONSOLE_PASSWORD": PASSWORD,
        "IGRELAY_SECRET_KEY": SECRET_KEY,
        "IGRELAY_SINKS": f"sqlite:///{tmp_path}/records.sqlite3",
        "IG_ACCESS_TOKENS": f"{ACCOUNT}=token-one,17841400000000002=token-two",
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def insights(n: int, media: str = MEDIA, account: str = ACCOUNT, start: datetime | None = None) -> list[dict]:
    """``n`` media_insights records of one media, an hour apart, views and reach growing, then levelling off."""
    from workers import records

    start = start or datetime(2026, 1, 5, 10, tzinfo=UTC)
    node = {"id": media, "media_type": "VIDEO", "media_product_type": "REELS", "timestamp": start.isoformat()}
    node["permalink"] = f"https://www.instagram.com/reel/{media}/"
    out = []
    for i in range(n):
        at = (start + timedelta(hours=i + 1)).isoformat().replace("+00:00", "Z")
        grown = 1 - math.exp(-(i + 1) / 4)  # a post's reach grows fast, then levels off
        metrics = {"views": round(1500 * grown), "reach": round(900 * grown), "total_interactions": round(40 * grown)}
        out.append(records.media_insights(account, node, metrics, {"saved": "not available"}, "schedule", at))
    return out


def store(settings: Any, batch: Sequence[dict]) -> None:
    """Write ``batch`` to the first configured sink as a worker would."""
    from workers import sinks

    name, (url, options) = next(iter(sinks.configured(settings).items()))
    sink = sinks.load(url, options, settings)
    try:
        sink.send(list(batch))
    finally:
        sink.close()


def csrf(html: str) -> str:
    """The CSRF token of the first form in ``html``."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client: Any, password: str = PASSWORD, **environ: Any) -> Any:
    """Log ``client`` in through the form; returns the POST's response."""
    token = csrf(client.get("/console/login", **environ).get_data(as_text=True))
    return client.post("/console/login", data={"password": password, "csrf_token": token}, **environ)
