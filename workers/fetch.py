"""Due media into fresh insights records: claim, fetch concurrently, emit what changed, reschedule.

``dispatch`` (a tick task) atomically claims members of ``igrelay:fetch:due`` whose time has come,
skipping paused accounts and media whose fetch is still running, and enqueues them in batches;
one ``fetch_batch`` job fetches a batch with threads over one Session (one Graph call per known
media), then one MULTI emits the records whose metrics changed and schedules each media's next
refresh from its first-seen time (a story's from its posting, ``IGRELAY_STORY_SCHEDULE``). Because
claiming removes the member, a request arriving during a running fetch schedules exactly one more.
Error policies (see ``workers.graph``): throttled -> pause every account the limit applies to until
Meta's estimate and re-request there; auth -> flag the account, drop its fetches, one log line;
terminal -> a record with the reason (``gone`` only once Meta says it twice, an hour apart); too few
viewers -> a ``not_enough_viewers`` record until real values come, and the story's next look;
transient -> bounded backoff.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq import Queue

from config import contract, stats
from config.rq import QUEUE, SERIALIZER, presets
from config.settings import Settings
from workers import delivery, media_state, records, schedule
from workers.context import Context
from workers.graph import AuthError, GraphError, TerminalError, ThrottledError, TooFewViewers, TransientError
from workers.graph_client import GraphClient, MediaResult, open_client
from workers.redis_values import text, text_map
from workers.sinks import Record

MAX_TRANSIENT = 5
DIGEST_CHARS = 16  # of the metrics' SHA-1, kept per media to emit only changes: 64 bits tell them apart
# (prefix, suffix) of the pause key around an account id, for the claim script.
_PAUSED_AROUND = contract.paused_until("\0").split("\0")
log = logging.getLogger("igrelay.fetch")

# KEYS: due zset, trigger hash. ARGV: now, limit, running TTL, running-key prefix, pause-key prefix and suffix.
# Returns {claimed member/trigger pairs, number of malformed members removed}. A member that is not
# ACCOUNT:MEDIA in digits (written by a bug or by hand) is removed, never claimed: an error half way
# would lose the members this run had already taken off the schedule.
_CLAIM_LUA = """
local out, removed = {}, 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])) do
  local acc = string.match(m, '^(%d+):%d+$')
  if not acc then
    redis.call('ZREM', KEYS[1], m)
    redis.call('HDEL', KEYS[2], m)
    removed = removed + 1
  else
    local paused = tonumber(redis.call('GET', ARGV[5] .. acc .. ARGV[6]) or '0') or 0
    if paused > tonumber(ARGV[1]) then
      redis.call('ZADD', KEYS[1], paused, m)
    elseif redis.call('EXISTS', ARGV[4] .. m) == 1 then
      redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + 5, m)
    else
      redis.call('ZREM', KEYS[1], m)
      table.insert(out, m)
      table.insert(out, redis.call('HGET', KEYS[2], m) or 'schedule')
      redis.call('HDEL', KEYS[2], m)
      redis.call('SET', ARGV[4] .. m, '1', 'EX', ARGV[3])
    end
  end
end
return {out, removed}
"""


def claim(redis: Redis, now: float, limit: int = 1000) -> list[list[str]]:
    """Remove and return up to ``limit`` due ``[account, media, trigger]`` items."""
    ttl = presets()["fetch"]["job_timeout"] + 60
    keys = (contract.FETCH_DUE, contract.FETCH_TRIGGER)
    answer: Any = redis.eval(
        _CLAIM_LUA, 2, *keys, f"{now:.3f}", limit, ttl, contract.FETCH_RUNNING_PREFIX, *_PAUSED_AROUND
    )
    flat, removed = answer
    if removed:
        stats.incr(redis, "igrelay_fetch_skipped_total", int(removed), reason="malformed")
        log.error("malformed members removed from the fetch schedule", extra={"count": int(removed)})
    return [[*text(m).split(":", 1), text(t)] for m, t in zip(flat[::2], flat[1::2], strict=True)]


def dispatch(ctx: Context, now: float | None = None) -> int:
    """Tick task: enqueue fetch jobs for every due media; returns media dispatched."""
    redis, settings = ctx.redis, ctx.settings
    items = claim(redis, now or time.time())
    flagged = {a for a in {i[0] for i in items} if media_state.needs_reauth(redis, settings, a)}
    dropped = [i for i in items if i[0] in flagged]
    if dropped:  # fetches stop until the account is reconnected (a new token)
        redis.delete(*(contract.fetch_running(a, m) for a, m, _ in dropped))
        stats.incr(redis, "igrelay_fetch_skipped_total", len(dropped), reason="needs_reauth")
    items = [i for i in items if i not in dropped]
    size = settings.fetch_batch
    queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        queue.enqueue(
            contract.Jobs.FETCH_BATCH, args=(chunk,), description=f"fetch {len(chunk)} media", **presets()["fetch"]
        )
    return len(items)


@dataclass
class Outcome:
    """One media's fetch: its item, stored state, and a result or an error."""

    item: list[str]
    state: dict[str, str]
    result: MediaResult | None = None
    error: GraphError | None = None


def fetch_batch(redis: Redis, settings: Settings, items: list[list[str]], now: float | None = None) -> dict[str, int]:
    """Fetch ``items`` concurrently, then emit and reschedule in one MULTI."""
    threads = settings.fetch_threads
    states = _states(redis, items)
    # accounts throttled or refused during this batch, or flagged by an earlier batch: no more calls
    blocked: dict[str, GraphError] = {
        a: AuthError("account needs reconnection") for a in _flagged(redis, settings, items)
    }
    with (
        open_client(settings, redis, threads, purpose="media") as client,
        ThreadPoolExecutor(max_workers=threads) as pool,
    ):
        outcomes = list(pool.map(lambda pair: _fetch_one(client, blocked, *pair), zip(items, states, strict=True)))
    return finish(redis, settings, outcomes, now)


def _flagged(redis: Redis, settings: Settings, items: list[list[str]]) -> set[str]:
    """The accounts of ``items`` already flagged for reconnection."""
    return {a for a in {i[0] for i in items} if media_state.needs_reauth(redis, settings, a)}


def _states(redis: Redis, items: list[list[str]]) -> list[dict[str, str]]:
    pipe = redis.pipeline(transaction=False)
    for account, media_id, _trigger in items:
        pipe.hgetall(contract.media(account, media_id))
    return [text_map(raw) for raw in pipe.execute()]


def _fetch_one(client: GraphClient, blocked: dict[str, GraphError], item: list[str], state: dict[str, str]) -> Outcome:
    account, media_id, _trigger = item
    if account in blocked:
        return Outcome(item, state, error=blocked[account])
    if state.get("terminal"):  # Meta said it will never answer: no call
        return Outcome(item, state, error=_terminal(state["terminal"]))
    try:
        if not state.get("kind"):  # first heard of through a webhook: learn its type (one extra call, once)
            state.update(media_state.from_node(client.describe(account, media_id)))
        return Outcome(item, state, result=client.media(account, media_id, state["kind"], state.get("media_type")))
    except ThrottledError as exc:
        blocked.update(dict.fromkeys(media_state.throttled_accounts(client.settings, account, exc), exc))
        return Outcome(item, state, error=exc)
    except AuthError as exc:
        blocked[account] = exc
        return Outcome(item, state, error=exc)
    except GraphError as exc:
        return Outcome(item, state, error=exc)
    except Exception as exc:  # a surprise in one media must not lose the batch's other results
        log.exception("unexpected error fetching a media", extra={"media": media_id})
        return Outcome(item, state, error=GraphError(f"unexpected {type(exc).__name__}"))


def _terminal(reason: str) -> TerminalError:
    exc = TerminalError(f"media has no insights: {reason}")
    exc.reason = reason
    return exc


def finish(redis: Redis, settings: Settings, outcomes: list[Outcome], now: float | None = None) -> dict[str, int]:
    """Apply each outcome's policy in one MULTI; returns counts by outcome."""
    now = now or time.time()
    pipe = redis.pipeline(transaction=True)
    out: list[Record] = []
    counts: dict[str, int] = {}
    refused = [o.item for o in outcomes if isinstance(o.error, AuthError)]
    flagged: set[str] = _flagged(redis, settings, refused)  # already flagged: not counted or logged again
    applied: list[tuple[list[str], str]] = []
    for outcome in outcomes:
        kind = _apply(pipe, settings, outcome, now, out, flagged)
        counts[kind] = counts.get(kind, 0) + 1
        applied.append((outcome.item, kind))
        pipe.delete(contract.fetch_running(*outcome.item[:2]))
    emitted = delivery.emit(redis, settings, out, pipeline=pipe)
    for kind, n in counts.items():
        stats.incr(pipe, "igrelay_fetches_total", n, outcome=kind)
    emitted.kick(redis, pipe.execute())
    for (account, media_id, trigger), kind in applied:
        log.info("fetched", extra={"account": account, "media": media_id, "trigger": trigger, "outcome": kind})
    counts["records"] = len(out)
    return counts


def _apply(pipe: Any, settings: Settings, o: Outcome, now: float, out: list[Record], flagged: set[str]) -> str:
    account, media_id, trigger = o.item
    if o.result is not None:
        o.state.update(media_state.from_node(o.result.node), measured="1")
        # Meta answers again: an earlier 100/33 was transient, and no attempts are counted (none stored: zero).
        if gone := [f for f in ("gone_at", "attempts") if o.state.pop(f, None) is not None]:
            pipe.hdel(contract.media(account, media_id), *gone)
        result = o.result
        _emit_if_changed(
            pipe,
            settings,
            o,
            records.media_insights(
                account, result.node, result.metrics, result.unavailable, trigger, breakdowns=result.breakdowns
            ),
            out,
        )
        _schedule_next(pipe, settings, o, now)
        return "ok"
    exc = o.error
    if isinstance(exc, TerminalError) and exc.reason == "gone" and not _gone_twice(o.state, now):
        return _gone_once(pipe, settings, o, now)
    if isinstance(exc, TerminalError):
        o.state["terminal"] = exc.reason
        _emit_reason(pipe, settings, o, exc.reason, out)
        return "terminal"
    if isinstance(exc, TooFewViewers):
        if not o.state.get("measured"):  # real values, once seen, are never replaced by "not yet"
            _emit_reason(pipe, settings, o, exc.reason, out)
        _schedule_next(pipe, settings, o, now)
        return "not_enough_viewers"
    if isinstance(exc, ThrottledError):
        return _throttled(pipe, settings, o, exc, now, flagged)
    if isinstance(exc, AuthError):
        if account not in flagged:  # one line and one count per account, however many media it had
            flagged.add(account)
            media_state.flag_reauth(pipe, settings, account, exc)
        return "auth"
    if isinstance(exc, TransientError) and int(o.state.get("attempts") or 0) < MAX_TRANSIENT:
        attempts = int(o.state.get("attempts") or 0) + 1
        pipe.hset(contract.media(account, media_id), mapping={**_learned(o.state), "attempts": attempts})
        schedule.request_fetch(pipe, account, media_id, trigger, now + media_state.backoff(attempts))
        return "transient"
    log.warning("fetch failed; next try on schedule", extra={"media": media_id, "error": str(exc)})
    _schedule_next(pipe, settings, o, now)
    return "failed"


def _emit_reason(pipe: Any, settings: Settings, o: Outcome, reason: str, out: list[Record]) -> None:
    """A record saying why the media has no metrics (every metric ``unavailable`` with ``reason``)."""
    account, media_id, trigger = o.item
    node = media_state.to_node(media_id, o.state)
    _emit_if_changed(pipe, settings, o, records.terminal_insights(settings, account, node, reason, trigger), out)


def _gone_twice(state: dict[str, str], now: float) -> bool:
    """True when Meta already said 100/33 at least ``GONE_CONFIRM`` seconds ago."""
    first = float(state.get("gone_at") or 0)
    return bool(first) and now - first >= media_state.GONE_CONFIRM


def _gone_once(pipe: Any, settings: Settings, o: Outcome, now: float) -> str:
    """A first 100/33 (or one inside the hour): ask once more an hour after the first."""
    account, media_id, trigger = o.item
    first = float(o.state.get("gone_at") or now)
    pipe.hset(contract.media(account, media_id), "gone_at", int(first))
    schedule.request_fetch(pipe, account, media_id, trigger, first + media_state.GONE_CONFIRM)
    return "gone_unconfirmed"


def _throttled(pipe: Any, settings: Settings, o: Outcome, exc: ThrottledError, now: float, flagged: set[str]) -> str:
    """Pause every account the limit applies to until Meta's estimate, and ask for this media then."""
    account, media_id, trigger = o.item
    until = now + exc.retry_after  # Meta's estimate; never sleep in a job
    for paused in media_state.throttled_accounts(settings, account, exc):
        media_state.pause(pipe, paused, until, exc.retry_after)
        if "paused:" + paused not in flagged:  # one pause per account, however many media it had
            flagged.add("paused:" + paused)
            stats.incr(pipe, "igrelay_rate_limit_pauses_total")
            log.warning(
                "account throttled by Meta; paused",
                extra={"account": paused, "seconds": exc.retry_after, "scope": exc.scope},
            )
    if _learned(o.state):
        pipe.hset(contract.media(account, media_id), mapping=_learned(o.state))
    schedule.request_fetch(pipe, account, media_id, trigger, until)
    return "throttled"


def _learned(state: dict[str, str]) -> dict[str, str]:
    """The node fields a describe call already gave, kept so a retry needs no second one."""
    return {k: state[k] for k in media_state.NODE_FIELDS_BY_STATE if state.get(k)}


def _emit_if_changed(pipe: Any, settings: Settings, o: Outcome, record: Record, out: list[Record]) -> None:
    """Emit ``record`` unless its metrics equal the last emitted ones for this media; save the state."""
    account, media_id, _trigger = o.item
    measured = [record["metrics"], record["unavailable"]]
    full = hashlib.sha1(json.dumps(measured, sort_keys=True).encode(), usedforsecurity=False).hexdigest()
    digest = full[:DIGEST_CHARS]
    stored = o.state.get("digest") or ""
    if not stored or not full.startswith(stored):  # a digest stored whole before it was shortened still matches
        out.append(record)
    media_state.save(pipe, settings, account, media_id, {**o.state, "digest": digest}, time.time())


def _schedule_next(pipe: Any, settings: Settings, o: Outcome, now: float) -> None:
    account, media_id, _trigger = o.item
    at = media_state.refresh_after(settings, o.state, now)
    if at is not None:
        schedule.request_fetch(pipe, account, media_id, "schedule", at)
