"""Not a sink: the rows a record becomes in the SQL sinks' tables (the layout is ``config.tables``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from config.tables import COLUMNS as COLUMNS
from config.tables import ddl as ddl
from config.tables import safe_prefix as safe_prefix
from workers.sinks import Record


def insert_sql(prefix: str, mark: str, schema: str = "") -> tuple[str, str]:
    """The two upserts (records, metrics) with ``mark`` as the placeholder (``?`` or ``%s``)."""
    prefix = f"{schema}.{prefix}" if schema else prefix
    marks = ", ".join([mark] * len(COLUMNS))
    # prefix and schema passed safe_prefix(); values go as parameters (hence the nosec).
    return (
        f"INSERT INTO {prefix}records ({', '.join(COLUMNS)}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING",  # nosec B608
        f"INSERT INTO {prefix}record_metrics (record_id, name, value) VALUES ({mark}, {mark}, {mark})"  # nosec B608
        " ON CONFLICT (record_id, name) DO NOTHING",
    )


def rows(records: Sequence[Record]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Record rows and metric rows for ``records`` (a batch may repeat an id: first one wins)."""
    seen: set[str] = set()
    out: list[tuple[Any, ...]] = []
    metrics: list[tuple[Any, ...]] = []
    for r in records:
        rid = str(r["id"])
        if rid in seen:
            continue
        seen.add(rid)
        data = json.dumps(r, ensure_ascii=False, separators=(",", ":"), default=str)
        out.append(
            (
                rid,
                r.get("kind"),
                _s(r.get("account_id")),
                _s(r.get("media_id")),
                r.get("captured_at"),
                r.get("trigger"),
                r.get("media_product_type"),
                data,
            )
        )
        for name, value in (r.get("metrics") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics.append((rid, name, float(value)))
    return out, metrics


def _s(value: Any) -> str | None:
    return None if value is None else str(value)
