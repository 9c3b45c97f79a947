"""Daily account insights on Meta's days: fetched when a day is over and again 48 h later.

Meta's ``period=day`` buckets end at Pacific midnight (``end_time`` 07:00 or 08:00 UTC, by daylight
saving), and its numbers "may be delayed up to 48 hours"
(https://developers.facebook.com/docs/instagram-platform/api-reference/instagram-user/insights).
So each account's Pacific day is fetched on the first tick after it ends and once more 48 h after
its end; the second fetch is a new record only when its values differ (the latest ``captured_at``
per account and day is the answer). One fetch is a few calls, each with the period, type or
breakdown its metrics need: the day's totals, ``follows_and_unfollows`` by ``follow_type``,
``follower_count``, ``online_followers``, and the user node's ``followers_count``. The first fetch
also takes the demographics, one record per ``timeframe``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

from redis import Redis

from config import accounts, contract, periodic
from config.settings import Settings
from workers import breakdowns, delivery, graph, media_state, records, ticker
from workers import metric_registry as registry
from workers.breakdowns import Breakdowns
from workers.context import Context
from workers.graph import AuthError, GraphError, ThrottledError, TransientError
from workers.graph_client import GraphClient, open_client
from workers.redis_values import text_map
from workers.sinks import Record

PACIFIC = ZoneInfo("America/Los_Angeles")
REFETCH_AFTER = 48 * 3600
DAY_STATE_TTL = 5 * 86400  # outlives the second fetch
LOCK_TTL = 4 * 86400
RETRY = 900  # an account paused or flagged when its day was due is looked at again this much later
PASSES = ("first", "again")
log = logging.getLogger("igrelay.account_insights")


def day_window(day: str) -> tuple[int, int]:
    """(since, until) in Unix seconds of the Pacific day ``day``: Meta's ``period=day`` bucket."""
    start = date.fromisoformat(day)
    return _pacific_midnight(start), _pacific_midnight(start + timedelta(days=1))


def _pacific_midnight(day: date) -> int:
    return int(datetime.combine(day, clock(0), tzinfo=PACIFIC).timestamp())


def day_of(end_time: Any) -> str | None:
    """The date of the day bucket ending at Meta's ``end_time`` (12 h earlier holds for any midnight)."""
    end = graph.parse_timestamp(end_time)
    return (end.astimezone(UTC) - timedelta(hours=12)).date().isoformat() if end else None


def due_days(now: float) -> dict[str, str]:
    """{pass: day}: the Pacific day just over (``first``) and the one whose end is 48 h past (``again``)."""
    latest = datetime.fromtimestamp(now, PACIFIC).date() - timedelta(days=1)
    again = datetime.fromtimestamp(now - REFETCH_AFTER, PACIFIC).date() - timedelta(days=1)
    return {"first": latest.isoformat(), "again": again.isoformat()}


def due(ctx: Context, now: float | None = None) -> int:
    """Tick task: enqueue each account's day once when it is over and once 48 h later (each account early in
    Meta's day, at its own phase); an account paused or flagged then is looked at again ``RETRY`` later."""
    now = now or time.time()
    redis, claimed = ctx.redis, periodic.claim(ctx.redis, ctx.settings, periodic.INSIGHTS, now)
    active = set(accounts.active(redis, ctx.settings, [a for a, _ in claimed]))
    with redis.pipeline(transaction=False) as pipe:
        for account, at in claimed:
            periodic.soon(
                pipe, periodic.INSIGHTS, account, periodic.next_daily(at, now) if account in active else now + RETRY
            )
        passes = [
            (account, step, day) for step, day in due_days(now).items() for account, _ in claimed if account in active
        ]
        for account, step, day in passes:
            pipe.set(contract.lock(f"account_insights:{day}:{step}", account), b"1", nx=True, ex=LOCK_TTL)
        won = pipe.execute()[len(claimed) :]
    n = 0
    for (account, _step, day), ok in zip(passes, won, strict=True):
        if ok:
            n += ticker.enqueue_each(
                ctx, "account_insights", [account], contract.Jobs.ACCOUNT_INSIGHTS, "periodic", (day,)
            )
    return n


def fetch_day(
    redis: Redis, settings: Settings, account: str, day: str | None = None, now: float | None = None
) -> list[Record]:
    """The account's records of Meta's day ``day`` (default: the day just over); emits the new ones."""
    now = now or time.time()
    latest = due_days(now)["first"]
    day = day or latest
    state = text_map(redis.hgetall(contract.account_day(account, day)))
    with open_client(settings, redis, 2, purpose="insights") as client:
        try:
            daily = _daily(client, account, day, state)
            snapshots = _demographics(client, settings, account, day) if day == latest else []
        except (AuthError, ThrottledError) as exc:
            redis.delete(*(contract.lock(f"account_insights:{day}:{step}", account) for step in PASSES))
            periodic.soon(redis, periodic.INSIGHTS, account, now + RETRY)
            _blocked(redis, settings, account, exc, now)
            return []
    fresh = ([daily] if state.get("id") != daily["id"] else []) + snapshots  # the same day twice: one record
    pipe = redis.pipeline(transaction=True)
    followers = daily["metrics"].get("followers_count")
    pipe.hset(contract.account_day(account, day), mapping={"id": daily["id"], "followers_count": followers or ""})
    pipe.expire(contract.account_day(account, day), DAY_STATE_TTL)
    emitted = delivery.emit(redis, settings, fresh, pipeline=pipe)
    emitted.kick(redis, pipe.execute())
    return fresh


def _daily(client: GraphClient, account: str, day: str, state: Mapping[str, str]) -> Record:
    """The day's ``account_insights`` record: totals, follows/unfollows, new followers, hourly online."""
    since, until = day_window(day)
    totals = client.account_insights(account, since, until)
    metrics, unavailable, found = dict(totals.metrics), dict(totals.unavailable), {}
    for part in (_follows, _follower_count, _online_followers):
        part_metrics, part_unavailable, part_found = part(client, account, day)
        metrics.update(part_metrics)
        unavailable.update(part_unavailable)
        found.update(part_found)
    # followers_count is a running total of now, not of the day: the second fetch keeps the first one's.
    followers = float(state["followers_count"]) if state.get("followers_count") else client.followers_count(account)
    if followers is not None:
        metrics["followers_count"] = int(followers)
    return records.account_insights(account, day, metrics, unavailable, "schedule", breakdowns=found)


Part = tuple[dict[str, float], dict[str, str], Breakdowns]


def _follows(client: GraphClient, account: str, day: str) -> Part:
    """``follows`` and ``unfollows``: ``follows_and_unfollows`` by ``follow_type``."""
    metric, breakdown, names = registry.FOLLOWS
    since, until = day_window(day)
    params = {"period": "day", "metric_type": "total_value", "breakdown": breakdown, "since": since, "until": until}
    data, reason = _ask(client, account, [metric], params)
    found = breakdowns.parse(data, [metric])
    split = found.get(metric, {}).get(breakdown, {})
    metrics = {name: split[key] for key, name in names.items() if key in split}
    return metrics, {n: reason for n in names.values() if n not in metrics}, found


def _follower_count(client: GraphClient, account: str, day: str) -> Part:
    """``follower_count``: the day's new followers (a ``time_series``, matched by its ``end_time``)."""
    name = registry.FOLLOWER_COUNT
    value, reason = _series_value(client, account, name, day, "day")
    if breakdowns.number(value):
        return {name: value}, {}, {}
    return {}, {name: reason}, {}


def _online_followers(client: GraphClient, account: str, day: str) -> Part:
    """``online_followers``: followers online by hour of the day, as the ``hour`` breakdown."""
    name = registry.ONLINE_FOLLOWERS
    value, reason = _series_value(client, account, name, day, "lifetime")
    hours = breakdowns.hourly(value)
    return ({}, {}, {name: {breakdowns.HOUR: hours}}) if hours else ({}, {name: reason}, {})


def _series_value(client: GraphClient, account: str, name: str, day: str, period: str) -> tuple[Any, str]:
    """The value of ``day`` in a metric's time series (None and a reason when there is none)."""
    since, until = day_window(day)
    data, reason = _ask(client, account, [name], {"period": period, "since": since, "until": until})
    for item in data:
        if isinstance(item, dict) and item.get("name") == name:
            for point in item.get("values") or []:
                if isinstance(point, dict) and day_of(point.get("end_time")) == day:
                    return point.get("value"), reason
    return None, reason


def _demographics(client: GraphClient, settings: Settings, account: str, day: str) -> list[Record]:
    """One ``account_insights`` record per timeframe with the demographics, one breakdown per call."""
    metrics = registry.listed(settings, "ACCOUNT_DEMOGRAPHICS")
    out = []
    for timeframe in registry.listed(settings, "DEMOGRAPHIC_TIMEFRAMES") if metrics else []:
        found: Breakdowns = {}
        unavailable: dict[str, str] = {}
        for breakdown in registry.listed(settings, "DEMOGRAPHIC_BREAKDOWNS"):
            params = {"period": "lifetime", "metric_type": "total_value", "timeframe": timeframe}
            params["breakdown"] = breakdown
            data, reason = _ask(client, account, metrics, params)
            for metric, by in breakdowns.parse(data, metrics).items():
                found.setdefault(metric, {}).update(by)
            unavailable.update({f"{m}.{breakdown}": reason for m in metrics if breakdown not in found.get(m, {})})
        out.append(
            records.account_insights(account, day, {}, unavailable, "schedule", breakdowns=found, timeframe=timeframe)
        )
    return out


def _ask(client: GraphClient, account: str, metrics: list[str], params: Mapping[str, Any]) -> tuple[list[Any], str]:
    """An insights call's ``data`` and the reason a metric missing from it has no value."""
    query = {"metric": ",".join(metrics), **{k: str(v) for k, v in params.items()}}
    try:
        body = client.get(account, f"{account}/insights", query, requested=metrics)
    except (AuthError, ThrottledError, TransientError):
        raise
    except GraphError as exc:  # refused (code 100 and friends): these metrics only, the rest of the day stands
        log.warning("account insights refused", extra={"account": account, "metrics": metrics, "error": str(exc)})
        return [], graph.UNSUPPORTED
    data = body.get("data")
    return (data if isinstance(data, list) else []), graph.NO_DATA


def _blocked(redis: Redis, settings: Settings, account: str, exc: Exception, now: float) -> None:
    """Throttled: pause the account; refused token: flag it. The tick asks again once it is active."""
    pipe = redis.pipeline(transaction=True)
    if isinstance(exc, ThrottledError):
        media_state.pause(pipe, account, now + exc.retry_after, exc.retry_after)
    else:
        media_state.flag_reauth(pipe, settings, account, exc)
    pipe.execute()
