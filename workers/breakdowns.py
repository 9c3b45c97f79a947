"""Meta's breakdown answers flattened to ``{metric: {breakdown: {key: value}}}``, without I/O.

An insight asked for with ``breakdown=`` carries ``total_value.breakdowns[]``, each with its
``dimension_keys`` and ``results[]`` of ``dimension_values`` and ``value``; an hourly series
(``online_followers``) carries ``{hour: count}`` as its value. Several dimension keys in one
answer are joined with ``,`` (breakdown) and their values with ``|`` (key).
https://developers.facebook.com/docs/instagram-platform/api-reference/instagram-user/insights
https://developers.facebook.com/documentation/instagram-platform/reference/instagram-media/insights
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Breakdowns = dict[str, dict[str, dict[str, float]]]  # metric -> breakdown -> key -> value
HOUR = "hour"  # the breakdown name of an hourly map such as online_followers


def number(value: Any) -> bool:
    """True for a JSON number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def of_item(item: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """One insight's breakdowns: ``{breakdown: {key: value}}`` (empty when it has none)."""
    total = item.get("total_value")
    blocks = total.get("breakdowns") if isinstance(total, dict) else None
    out: dict[str, dict[str, float]] = {}
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict) or not block.get("dimension_keys"):
            continue
        values = {
            "|".join(str(d) for d in result["dimension_values"]): result["value"]
            for result in block.get("results") or []
            if _result(result)
        }
        if values:
            out[",".join(str(k) for k in block["dimension_keys"])] = values
    return out


def _result(result: Any) -> bool:
    return isinstance(result, dict) and isinstance(result.get("dimension_values"), list) and number(result.get("value"))


def parse(data: Any, requested: list[str]) -> Breakdowns:
    """The breakdowns of every requested metric in an insights ``data`` list."""
    out: Breakdowns = {}
    for item in data if isinstance(data, list) else []:
        if isinstance(item, dict) and item.get("name") in requested:
            found = of_item(item)
            if found:
                out[item["name"]] = found
    return out


def hourly(value: Any) -> dict[str, float]:
    """An ``{hour: count}`` value (``online_followers``) with its numbers only."""
    if not isinstance(value, dict):
        return {}
    return {str(hour): count for hour, count in value.items() if number(count)}
