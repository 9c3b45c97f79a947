"""``igrelay check``: configuration, Redis, workers, tokens, sinks and webhooks, as OK / WARN / PROBLEM lines.

Each check returns ``Row``s: ``ok``, ``warn`` (worth knowing, not failing) or ``problem`` (with
``fix``, what to do). Sinks are probed by their own ``probe``. Texts never hold a secret: URLs go
through ``redact_url`` (sink URLs through their sink's ``redact``), tokens never appear.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from config import accounts as registry
from config import contract, redis_conn
from config.logs import redact, register_secrets, settings_secrets
from config.settings import ConfigError, Settings, redact_url
from igrelay.commands.common import explain_parts, who
from workers import media_state, subscriptions, watchdog
from workers.graph import GraphError
from workers.graph_client import GraphClient, open_client

MARKS = {"ok": "OK", "warn": "WARN", "problem": "PROBLEM"}


@dataclass(frozen=True)
class Row:
    """One line of the report."""

    status: str  # "ok" | "warn" | "problem"
    area: str
    text: str
    fix: str = ""


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
    rows = config_rows(settings)
    found, redis = redis_rows(settings)
    rows += found
    if redis is not None:
        rows += worker_rows(redis)
    rows += token_rows(settings, redis)
    rows += sink_rows(settings, redis)
    if redis is not None:
        rows += watchdog_rows(settings, redis)
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


def day(epoch: Any) -> str:
    """``2026-11-27 10:00 UTC`` from epoch seconds."""
    return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%d %H:%M UTC")


def config_rows(settings: Settings) -> list[Row]:
    """What ``web`` needs, and which Graph host the tokens are for."""
    rows = []
    try:
        settings.require_web()
        rows.append(Row("ok", "config", f"META_APP_SECRET ({len(settings.app_secrets)}) and META_VERIFY_TOKEN set"))
    except ConfigError as exc:
        rows.append(Row("problem", "config", str(exc), "set it in the environment (or .env); `igrelay web` needs it"))
    login = "Instagram Login" if settings.is_instagram_login else "Facebook Login"
    host = f"{redact_url(settings.graph_api_url)} {settings.graph_api_version} ({login})"
    rows.append(Row("ok", "config", f"Graph API {host}"))
    rows.append(secret_key_row(settings))
    rows.append(metrics_row(settings))
    return rows


def secret_key_row(settings: Settings) -> Row:
    """Tokens can be stored only with ``IGRELAY_SECRET_KEY``."""
    if settings.secret_keys:
        return Row("ok", "config", f"IGRELAY_SECRET_KEY set ({len(settings.secret_keys)}): stored tokens are encrypted")
    text = "IGRELAY_SECRET_KEY not set: no token is stored (refreshed tokens are not kept, the login flow is off)"
    fix = "set IGRELAY_SECRET_KEY to a long random string, the same on web and worker"
    return Row("warn", "config", text, fix)


def metrics_row(settings: Settings) -> Row:
    """Is ``/metrics`` open?"""
    if settings.metrics_token:
        return Row("ok", "config", "/metrics wants the IGRELAY_METRICS_TOKEN bearer token")
    return Row("ok", "config", "/metrics is open (set IGRELAY_METRICS_TOKEN unless it is on a private network)")


def redis_rows(settings: Settings) -> tuple[list[Row], Redis | None]:
    """Does Redis answer, and will it keep igrelay's keys (``noeviction``)?"""
    where = redact_url(settings.redis_url)
    client = redis_conn.connect(settings, "cli", timeout=5)
    try:
        client.ping()
    except RedisError as exc:
        client.close()
        text = f"{where} does not answer ({type(exc).__name__})"
        return [Row("problem", "redis", text, "start Redis or fix REDIS_URL")], None
    rows = [Row("ok", "redis", f"{where} answers")]
    if settings.redis_url.startswith("rediss://") and not settings.redis_tls_verify:
        text = (
            "TLS certificate not checked (REDIS_TLS_VERIFY=false): anyone on the network path can read and write Redis"
        )
        rows.append(Row("warn", "redis", text, "set REDIS_TLS_CA to your provider's CA bundle when it gives one"))
    try:
        policy = str(client.config_get("maxmemory-policy").get("maxmemory-policy", "?"))
    except RedisError:  # managed Redis often forbids CONFIG
        policy = "unknown (CONFIG GET refused)"
    if policy == "noeviction":
        rows.append(Row("ok", "redis", "maxmemory-policy noeviction"))
    else:
        fix = "set maxmemory-policy noeviction (in your Redis plan's settings): evicting keys loses queued work"
        rows.append(Row("warn", "redis", f"maxmemory-policy {policy}", fix))
    return rows, client


def worker_rows(redis: Redis) -> list[Row]:
    """Is a worker ticking, and are there dead letters?"""
    rows = []
    if redis.exists(contract.TICK_ALIVE):
        rows.append(Row("ok", "worker", "a worker with the scheduler is running"))
    else:
        rows.append(Row("warn", "worker", "no worker has ticked in the last 30 s", "start `igrelay worker`"))
    from workers.failed import list_failed

    dead = len(list_failed(redis))
    if dead:
        fix = "see `igrelay failed list`, then `igrelay failed replay`"
        rows.append(Row("warn", "worker", f"{dead} dead letters", fix))
    return rows


def token_rows(settings: Settings, redis: Redis | None) -> list[Row]:
    """Each configured token against the Graph API, plus igrelay's own flags about it."""
    accounts = registry.ids(redis, settings) or ([""] if settings.access_token else [])
    if not accounts:
        fix = "set IG_ACCESS_TOKENS=ACCOUNT_ID=TOKEN (or IG_ACCESS_TOKEN); without one no insights are fetched"
        return [Row("problem", "token", "no access token configured", fix)]
    with open_client(settings, redis, pool=8) as client, ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda a: _token(client, settings, redis, a), accounts))
    return [row for rows in found for row in rows]


def _token(client: GraphClient, settings: Settings, redis: Redis | None, account: str) -> list[Row]:
    node, params = ("me", {"fields": "user_id,username"}) if settings.is_instagram_login else (account or "me", {})
    params = params or {"fields": "id,username" if account else "id,name"}
    try:
        body = client.get(account, node, params)
    except GraphError as exc:
        text, fix = explain_parts(exc, account)
        return [Row("problem", "token", text, fix)]
    owner = str(body.get("user_id") or body.get("id") or "")
    name = f"@{body['username']}" if body.get("username") else str(body.get("name") or owner)
    if account and settings.is_instagram_login and owner and owner != account:
        fix = "put this account's own token next to its id in IG_ACCESS_TOKENS"
        return [Row("problem", "token", f"the token of {who(account)} belongs to {name} ({owner})", fix)]
    rows = [Row("ok", "token", f"{who(account)} ({name}): token valid{_expiry(settings, redis, account)}")]
    if redis is not None and account:
        rows += _flags(settings, redis, account)
    return rows


def _expiry(settings: Settings, redis: Redis | None, account: str) -> str:
    """``, expires ...`` when igrelay refreshed the token itself (Meta does not say otherwise)."""
    if redis is None:
        return ""
    source, expires = redis.hmget(contract.token(account), "source", "expires_at")
    if expires and (source or b"").decode() == registry.mark(settings, account, source):
        how = "connected" if (source or b"").decode() == registry.CONNECTED else "refreshed by igrelay"
        return f", {how}, expires {day(expires)}"
    return ""


def _flags(settings: Settings, redis: Redis, account: str) -> list[Row]:
    rows = []
    if media_state.needs_reauth(redis, settings, account):
        text = f"{who(account)}: fetches are stopped because Meta refused this token earlier"
        fix = (
            "set a new token for it in IG_ACCESS_TOKENS (that clears the flag)"
            if account in settings.access_tokens
            else "needs_reconnect: connect it again (`igrelay accounts connect`)"
        )
        rows.append(Row("problem", "token", text, fix))
    paused = redis.get(contract.paused_until(account))
    if paused:
        rows.append(Row("warn", "token", f"{who(account)}: rate-limited by Meta until {day(paused)}"))
    return rows


def watchdog_rows(settings: Settings, redis: Redis) -> list[Row]:
    """The subscription watchdog's verdict per account."""
    rows = []
    for account in subscriptions.accounts(settings, redis):
        state = watchdog.state(redis, account) if account else {}
        if not state:
            continue
        problems = json.loads(state.get("problems") or "{}")
        since = f" (since {day(state['since'])})" if state.get("since") else ""
        for text in problems.values():
            what, _sep, fix = text.partition(": ")
            rows.append(Row("problem", "webhooks", f"{who(account)}: {what}{since}", fix))
        if not problems:
            last = f", last delivery {day(state['last_delivery'])}" if state.get("last_delivery") else ""
            rows.append(Row("ok", "webhooks", f"{who(account)}: subscribed{last}"))
    return rows


def sink_rows(settings: Settings, redis: Redis | None) -> list[Row]:
    """Each configured sink as its own ``probe`` sees it (it loads, is reachable, is not disabled)."""
    from workers import sinks  # sink modules load only for the command that needs them

    rows = []
    for name, (url, options) in sinks.configured(settings).items():
        label = f"{name} ({sinks.redact(url)})"
        for found in sinks.probe(name, url, options, settings, redis):
            text = f"{label} {found.text}" if found.status == "ok" else f"{label}: {found.text}"
            rows.append(Row(found.status, "sink", text, found.fix))
    return rows
