"""The subscription watchdog: says when Meta stops delivering for an account (log, stat, ``igrelay check``).

``due`` (a tick task) enqueues the ``watchdog`` job per account once per ``[watchdog] interval``
(default 1h), at the account's own phase of it (``config.periodic``). ``watch`` asks Meta which
fields the account is subscribed to and compares the account's last delivery (written by ingest)
with ``[watchdog] quiet`` (default 48h): an account that used to get deliveries and got none since
is flagged. After an hour of failed deliveries Meta unsubscribes the app from the account,
and it must be subscribed again.
https://developers.facebook.com/docs/messenger-platform/webhooks
State lives in the account's watchdog hash (``problems`` as JSON, ``problem`` text, ``since``,
``checked_at``, ``last_delivery``); a change of state logs once and counts
``igrelay_watchdog_alerts_total{account, problem}``.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from config import contract, periodic, stats
from config.settings import Settings
from workers import media_state, subscriptions, ticker
from workers.context import Context
from workers.graph import GraphError
from workers.graph_client import open_client
from workers.redis_values import text_map

SUBSCRIPTION_CODES = ("not_subscribed", "fields_missing", "app_unknown")
log = logging.getLogger("igrelay.watchdog")


def due(ctx: Context, now: float | None = None) -> int:
    """Tick task: enqueue a check of each account whose interval has passed (at its own phase)."""
    claimed = [a for a, _ in periodic.claim(ctx.redis, ctx.settings, periodic.WATCHDOG, now)]
    return ticker.enqueue_each(ctx, "watchdog", claimed, contract.Jobs.WATCHDOG, "periodic")


def watch(redis: Redis, settings: Settings, account: str, now: float | None = None) -> dict[str, str]:
    """Check ``account`` now, store and announce the result; returns ``{code: text}``."""
    now = now or time.time()
    known = state(redis, account)
    previous = json.loads(known.get("problems") or "{}")
    last = redis.get(contract.last_delivery(account)) or known.get("last_delivery")
    problems = _silence(settings, float(last), now) if last else {}
    found = _subscription(redis, settings, account)
    if found is None:  # Meta could not be asked this time: keep what we knew
        found = {c: t for c, t in previous.items() if c in SUBSCRIPTION_CODES}
    problems.update(found)
    record(redis, account, problems, previous, now, last)
    return problems


def _silence(settings: Settings, last: float, now: float) -> dict[str, str]:
    if now - last <= settings.watchdog_quiet:
        return {}
    when = datetime.fromtimestamp(last, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return {
        "deliveries_stopped": f"no webhook delivery since {when}: check the Meta app's webhook "
        "(callback URL, app secret) and run `igrelay subscribe`"
    }


def _subscription(redis: Redis, settings: Settings, account: str) -> dict[str, str] | None:
    """Problems with Meta's view of the subscription, or None when it could not be asked."""
    if media_state.needs_reauth(redis, settings, account) or media_state.is_paused(redis, account):
        return None  # a refused or throttled token: other alarms say so; no extra calls
    with open_client(settings, redis, 1, purpose="watchdog") as client:
        where = subscriptions.target(client, settings, account)
        if where.missing:
            return None
        try:
            have = subscriptions.subscribed(client, where)
        except GraphError as exc:
            log.info("watchdog could not read the subscription", extra={"account": account, "error": str(exc)})
            return None
    if have is None:
        return {"app_unknown": "several apps are subscribed to the Page: set META_APP_ID so this app's is checked"}
    return compare(have, subscriptions.fields_for(settings))


def compare(have: set[str], wanted: tuple[str, ...]) -> dict[str, str]:
    """Problems when ``have`` (subscribed fields) lacks any of ``wanted``."""
    if not have:
        return {"not_subscribed": "Meta says the app is not subscribed to this account: run `igrelay subscribe`"}
    missing = [f for f in wanted if f not in have]
    if missing:
        return {"fields_missing": f"not subscribed to {', '.join(missing)}: run `igrelay subscribe`"}
    return {}


def record(
    redis: Redis, account: str, problems: dict[str, str], previous: dict[str, str], now: float, last: Any
) -> None:
    """Store the state; on a change, log once and count each new problem."""
    for code in problems.keys() - previous.keys():
        stats.incr(redis, "igrelay_watchdog_alerts_total", problem=code)
        log.warning("watchdog: %s", problems[code], extra={"account": account, "problem": code})
    if previous and not problems:
        log.info("watchdog: account recovered", extra={"account": account})
    mapping: dict[Any, str | int] = {  # Any: redis-py's key type is a union a dict[str, ...] does not match
        "problems": json.dumps(problems),
        "problem": "; ".join(problems.values()),
        "checked_at": int(now),
    }
    if last:
        mapping["last_delivery"] = int(float(last))
    pipe = redis.pipeline(transaction=True)
    pipe.hset(contract.watchdog(account), mapping=mapping)
    if not problems:
        pipe.hdel(contract.watchdog(account), "since")
    elif not previous:
        pipe.hset(contract.watchdog(account), "since", int(now))
    pipe.execute()


def state(redis: Redis, account: str) -> dict[str, str]:
    """The stored state of ``account`` (``{}`` when never checked)."""
    return text_map(redis.hgetall(contract.watchdog(account)))
