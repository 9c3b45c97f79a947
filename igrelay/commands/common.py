"""What the commands share: a Redis that answers, Graph errors in one line, tables, JSON, progress."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from redis import Redis
from redis.exceptions import RedisError

from config import redis_conn
from config.settings import Settings, redact_url
from workers.graph import AuthError, GraphError, TerminalError, ThrottledError, TransientError


class CommandError(Exception):
    """A command cannot do what it was asked; the text is shown as is."""


def connect(settings: Settings, timeout: float = 3.0) -> Redis:
    """A Redis client that answered a PING, or a ``CommandError`` saying what to do."""
    client = redis_conn.connect(settings, "cli", timeout=timeout)
    try:
        client.ping()
    except RedisError as exc:
        client.close()
        where = redact_url(settings.redis_url)
        problem = f"Redis at {where} does not answer ({type(exc).__name__})"
        raise CommandError(f"{problem}: start it or fix REDIS_URL") from None
    return client


def optional_redis(settings: Settings) -> Redis | None:
    """Redis when it answers (refreshed tokens live there), else None: the command works without it."""
    try:
        return connect(settings, timeout=1.0)
    except CommandError:
        return None


def who(account: str) -> str:
    """How to name an account in a message (``""`` is the lone ``IG_ACCESS_TOKEN``)."""
    return f"account {account}" if account else "IG_ACCESS_TOKEN"


def explain(exc: GraphError, account: str = "") -> str:
    """A Graph error as one line with what to do; never a token."""
    return ": ".join(p for p in explain_parts(exc, account) if p)


def explain_parts(exc: GraphError, account: str = "") -> tuple[str, str]:
    """(what is wrong, what to do) for a Graph error."""
    code = f" (code {exc.code}{f'/{exc.subcode}' if exc.subcode else ''})" if exc.code else ""
    if isinstance(exc, AuthError) and exc.code is None:
        return f"no access token for {who(account)}", "set IG_ACCESS_TOKENS=ACCOUNT_ID=TOKEN"
    if isinstance(exc, AuthError) and exc.code == 190:
        return f"token for {who(account)} expired or invalid{code}", "reconnect the account and set its new token"
    if isinstance(exc, AuthError):
        return f"token for {who(account)} lacks a permission{code}", "reconnect it granting the insights scopes"
    if isinstance(exc, ThrottledError):
        return f"Meta is rate-limiting {who(account)}{code}", f"try again in about {exc.retry_after // 60 + 1} min"
    if isinstance(exc, TerminalError):
        return f"no insights for this media ({exc.reason}){code}", ""
    if isinstance(exc, TransientError):
        return f"the Graph API did not answer [{exc}]", "try again; check GRAPH_API_URL and the network"
    return f"the Graph API refused the request{code} [{exc}]", ""


def print_json(value: Any, out: TextIO | None = None) -> None:
    """Pretty JSON on a terminal, one compact line when piped."""
    out = out or sys.stdout
    if out.isatty():
        print(json.dumps(value, indent=2, ensure_ascii=False), file=out)
    else:
        print(json.dumps(value, ensure_ascii=False, separators=(",", ":")), file=out)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], out: TextIO | None = None) -> None:
    """Print ``rows`` as left-aligned columns under ``headers``."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out or sys.stdout)


class Progress:
    """``label 12/200`` redrawn on stderr when it is a terminal; silent otherwise."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.shown = sys.stderr.isatty() and total > 1

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more done and redraw."""
        self.done += n
        if self.shown:
            print(f"\r{self.label} {self.done}/{self.total}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        """End the progress line."""
        if self.shown:
            print(file=sys.stderr)
