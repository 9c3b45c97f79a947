"""Graph API field expansion: ``fields=id,insights.metric(reach,views),children{id,media_type}``.

https://developers.facebook.com/docs/graph-api/guides/field-expansion
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from igrelay.sandbox import errors

_NAME = re.compile(r"\s*([a-z_][a-z0-9_]*)")
_MODIFIER = re.compile(r"\.([a-z_]+)\(([^()]*)\)")


@dataclass(frozen=True)
class Field:
    """One requested field: its name, ``.name(args)`` modifiers and ``{subfields}``."""

    name: str
    modifiers: dict[str, list[str]] = field(default_factory=dict)
    subfields: tuple[Field, ...] = ()


def parse(text: str) -> list[Field]:
    """Parse a ``fields=`` value; raises Meta's syntax error on nonsense."""
    return [_parse_one(part) for part in _split(text) if part.strip()]


def _split(text: str) -> list[str]:
    """Split on commas outside () and {}."""
    parts, depth, current = [], 0, []
    for char in text:
        depth += (char in "({") - (char in ")}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise errors.syntax_error(text)
    return [*parts, "".join(current)]


def _parse_one(part: str) -> Field:
    match = _NAME.match(part)
    if not match:
        raise errors.syntax_error(part)
    rest, modifiers, subfields = part[match.end() :].strip(), {}, ()
    while rest.startswith("."):
        modifier = _MODIFIER.match(rest)
        if not modifier:
            raise errors.syntax_error(rest)
        modifiers[modifier.group(1)] = [a.strip() for a in modifier.group(2).split(",") if a.strip()]
        rest = rest[modifier.end() :]
    if rest.startswith("{") and rest.endswith("}"):
        subfields, rest = tuple(parse(rest[1:-1])), ""
    if rest:
        raise errors.syntax_error(rest)
    return Field(match.group(1), modifiers, subfields)
