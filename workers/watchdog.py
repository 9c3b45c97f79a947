"""The subscription watchdog: says when Meta stops delivering for an account (log, metric, ``igrelay check``).

``due`` (a tick task) enqueues ``watch_job`` per account once per ``[watchdog] interval`` (default
1h) under a ``SET NX EX`` lock. ``watch`` asks Meta which fields the account is subscribed to and
compares the account's last delivery (``igrelay:account:<id>:last_delivery``, written by ingest) with
``[watchdog] quiet`` (default 48h): an account that used to get deliveries and got none since is
flagged. Meta unsubscribes an app after an hour of failed deliveries (meta-platform.md 2.4).
State lives in the hash ``igrelay:watchdog:<account>`` (``problems`` as JSON, ``problem`` text,
``since``, ``checked_at``, ``last_delivery``); a change of state logs once and counts
``igrelay_watchdog_alerts_total{account, problem}``.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import Queue

from config import stats
from config.rq import QUEUE, SERIALIZER, presets
from config.settings import Settings, parse_duration
from workers import context, media_state, subscriptions
from workers.graph import GraphError
from workers.graph_client import GraphClient, new_session, timeout_for
from workers.ingest import LAST_DELIVERY_KEY

PREFIX = "igrelay:watchdog:"
SUBSCRIPTION_CODES = ("not_subscribed", "fields_missing")
log = logging.getLogger("igrelay.watchdog")


def key(account: str) -> str:
    """The account's watchdog state hash."""
    return PREFIX + account


def options(settings: Settings) -> tuple[int, int]:
    """(seconds between checks, seconds of silence that count as stopped) from TOML ``[watchdog]``."""
    table = settings.section("watchdog")
    interval = parse_duration("IGRELAY_CONFIG [watchdog] interval", str(table.get("interval", "1h")))
    quiet = parse_duration("IGRELAY_CONFIG [watchdog] quiet", str(table.get("quiet", "48h")))
    return max(interval, 60), quiet


def due(ctx: Any) -> int:
    """Tick task: enqueue a check of each account whose interval has passed."""
    interval, _quiet = options(ctx.settings)
    queue = Queue(QUEUE, connection=ctx.redis, serializer=SERIALIZER)
    n = 0
    for account in ctx.settings.accounts:
        if ctx.redis.set(f"igrelay:lock:watchdog:{account}", b"1", nx=True, ex=interval):
            job = f"{__name__}.watch_job"
            queue.enqueue(job, args=(account,), description=f"watchdog {account}", **presets()["periodic"])
            n += 1
    return n


def watch_job(account: str) -> list[str]:
    """RQ entry point: check ``account``; returns its problem codes."""
    ctx = context.current()
    return sorted(watch(ctx.redis, ctx.settings, account))


def watch(redis: Redis, settings: Settings, account: str, now: float | None = None) -> dict[str, str]:
    """Check ``account`` now, store and announce the result; returns ``{code: text}``."""
    now = now or time.time()
    state = {k.decode(): v.decode() for k, v in redis.hgetall(key(account)).items()}
    previous = json.loads(state.get("problems") or "{}")
    last = redis.get(LAST_DELIVERY_KEY.format(account)) or state.get("last_delivery")
    problems = _silence(settings, float(last), now) if last else {}
    found = _subscription(redis, settings, account)
    if found is None:  # Meta could not be asked this time: keep what we knew
        found = {c: t for c, t in previous.items() if c in SUBSCRIPTION_CODES}
    problems.update(found)
    record(redis, account, problems, previous, now, last)
    return problems


def _silence(settings: Settings, last: float, now: float) -> dict[str, str]:
    _interval, quiet = options(settings)
    if now - last <= quiet:
        return {}
    when = datetime.fromtimestamp(last, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return {
        "deliveries_stopped": f"no webhook delivery since {when}: check the Meta app's webhook "
        "(callback URL, app secret) and run `igrelay subscribe`"
    }


def _subscription(redis: Redis, settings: Settings, account: str) -> dict[str, str] | None:
    """Problems with Meta's view of the subscription, or None when it could not be asked."""
    if media_state.needs_reauth(redis, settings, account) or redis.exists(media_state.paused_key(account)):
        return None  # a refused or throttled token: other alarms say so; no extra calls
    with new_session(1) as session:
        client = GraphClient(session, settings, redis, timeout_for(settings))
        where = subscriptions.target(client, settings, account)
        if where.missing:
            return None
        try:
            have = subscriptions.subscribed(client, where)
        except GraphError as exc:
            log.info("watchdog could not read the subscription", extra={"account": account, "error": str(exc)})
            return None
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
        stats.incr(redis, "igrelay_watchdog_alerts_total", account=account, problem=code)
        log.warning("watchdog: %s", problems[code], extra={"account": account, "problem": code})
    if previous and not problems:
        log.info("watchdog: account recovered", extra={"account": account})
    mapping = {"problems": json.dumps(problems), "problem": "; ".join(problems.values()), "checked_at": int(now)}
    if last:
        mapping["last_delivery"] = int(float(last))
    pipe = redis.pipeline(transaction=True)
    pipe.hset(key(account), mapping=mapping)
    if not problems:
        pipe.hdel(key(account), "since")
    elif not previous:
        pipe.hset(key(account), "since", int(now))
    pipe.execute()


def state(redis: Redis, account: str) -> dict[str, str]:
    """The stored state of ``account`` (``{}`` when never checked)."""
    return {k.decode(): v.decode() for k, v in redis.hgetall(key(account)).items()}
