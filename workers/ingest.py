"""Deliveries out of the inbox stream, into deduped changes, records and fetch requests.

The inbox is a Redis stream read through the consumer group ``ingest``, so several workers
share it and entries a killed worker had read are claimed again after ``CLAIM_IDLE_MS``.
Per batch of entries: one pipeline marks every change as seen (``SET NX GET``, 72 h), one MULTI
emits the records, requests the fetches, counts, and acknowledges the entries. A change's seen
mark holds the entry id that claimed it, so re-reading the same entry after a crash re-emits its
changes (keyed sinks store them once) instead of losing them as "duplicates".
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError
from rq import Queue

from config import contract, stats
from config.rq import QUEUE, SERIALIZER, enqueue_drain
from config.settings import Settings
from workers import delivery, records, schedule
from workers.changes import COMMENT_FIELDS, NUMERIC_ID, Change, MalformedDelivery, iter_changes, problem
from workers.redis_values import text
from workers.sinks import Record

SEEN_TTL = 72 * 3600  # longer than Meta's 36 h of retries, twice over
CLAIM_IDLE_MS = 60_000
RETIRE_IDLE_MS = 10 * CLAIM_IDLE_MS  # a consumer this idle belongs to a job long gone (jobs time out at 120 s)
BATCH = 50  # entries per read: bodies can be up to IGRELAY_MAX_BODY_BYTES each
# A read of this many entries or more (short of BATCH) means a steady stream: worth a linger before the next.
# Fewer means a quiet one, read as it comes, so a lone comment waits for no one.
LINGER_FROM = 3

log = logging.getLogger("igrelay.ingest")


@dataclass
class DrainResult:
    """What one drain did, for logs and tests."""

    deliveries: int = 0
    changes: Counter[str] = field(default_factory=Counter)
    records: int = 0
    fetches: int = 0
    dead_letters: int = 0


def ensure_group(redis: Redis) -> None:
    """Create the consumer group (and the stream) once."""
    try:
        redis.xgroup_create(contract.INBOX, contract.INBOX_GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def kick(redis: Redis) -> bool:
    """Make sure a drain job is on its way, as the web does: enqueue one unless one is pending. True when
    this call enqueued it."""
    if not redis.set(contract.INBOX_PENDING, b"1", nx=True, ex=contract.PENDING_TTL):
        return False
    enqueue_drain(Queue(QUEUE, connection=redis, serializer=SERIALIZER))
    return True


def drain(
    redis: Redis, settings: Settings, consumer: str, max_seconds: float = 60.0, linger: float = 0.0
) -> DrainResult:
    """Process inbox entries until none are left (or ``max_seconds`` pass). After a read of a steady
    stream (``LINGER_FROM`` entries or more, short of ``BATCH``), wait ``linger`` seconds before the
    next, so it is read many deliveries at a time: each read costs the same few round trips and the
    drain the same RQ job, whatever their size."""
    ensure_group(redis)
    result = DrainResult()
    deadline = time.monotonic() + max_seconds
    own = _read_own(redis, consumer)  # left by this very job when a restart cut it short
    if own:
        process_batch(redis, settings, own, result)
    stale = True  # entries a dead consumer left: looked for until none is left, then new ones alone
    while time.monotonic() < deadline:
        entries = _claim_stale(redis, consumer) if stale else []
        if not entries:
            stale, entries = False, _read_new(redis, consumer)
        if not entries:
            break
        process_batch(redis, settings, entries, result)
        if linger and LINGER_FROM <= len(entries) < BATCH:
            time.sleep(linger)
    retire_consumers(redis, consumer)
    return result


def retire_consumers(redis: Redis, consumer: str) -> None:
    """Delete this drain's consumer, and any consumer long idle, from the group once they hold no pending
    entries. Every drain job reads under a consumer name of its own, so without this the group gains one
    consumer per job, forever (tests/faults/test_retention.py). A consumer with entries pending is kept:
    deleting it would make those entries unclaimable."""
    for info in redis.xinfo_consumers(contract.INBOX, contract.INBOX_GROUP):
        name = text(info["name"])
        if info["pending"] == 0 and (name == consumer or info["idle"] > RETIRE_IDLE_MS):
            redis.xgroup_delconsumer(contract.INBOX, contract.INBOX_GROUP, name)


def _read_own(redis: Redis, consumer: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Entries this consumer read and did not acknowledge (id ``0``: its own pending list)."""
    entries = _read(redis, consumer, "0")
    gone = [eid for eid, data in entries if not data]  # deleted since: nothing left to process
    if gone:
        redis.xack(contract.INBOX, contract.INBOX_GROUP, *gone)
    return [(eid, data) for eid, data in entries if data]


def _claim_stale(redis: Redis, consumer: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    _next, claimed, *_ = redis.xautoclaim(
        contract.INBOX, contract.INBOX_GROUP, consumer, CLAIM_IDLE_MS, "0-0", count=BATCH
    )
    return [(eid, data) for eid, data in claimed if data]


def _read_new(redis: Redis, consumer: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return _read(redis, consumer, ">")


def _read(redis: Redis, consumer: str, start: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """XREADGROUP of one batch from ``start`` (``0``: this consumer's pending entries; ``>``: new ones)."""
    answer: Any = redis.xreadgroup(contract.INBOX_GROUP, consumer, {contract.INBOX: start}, count=BATCH)
    return list(answer[0][1]) if answer else []  # RESP2: [[stream, entries]]


@dataclass
class Parsed:
    """One inbox entry read: the changes to act on (with their records), counts, and why any was refused."""

    eid: str
    data: dict[bytes, bytes]
    items: list[tuple[Change, Record]] = field(default_factory=list)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)
    accounts: set[str] = field(default_factory=set)  # real accounts it names, known fields or not


def process_batch(redis: Redis, settings: Settings, entries: list[Any], result: DrainResult) -> None:
    """Dedupe, emit and acknowledge one batch of stream entries; dead-letter the entries refused."""
    captured_at = records.now_iso()
    parsed = [parse_entry(text(eid), data, captured_at) for eid, data in entries]
    fresh = _dedupe(redis, parsed)
    out = [record for _change, record in fresh]
    triggers = [c for c, _r in fresh if c.field in COMMENT_FIELDS and c.media_id and not c.test]
    wanted = sorted({(c.account_id, c.media_id or "", c.field) for c in triggers})
    due_at = time.time() + settings.debounce_seconds
    pipe = redis.pipeline(transaction=True)
    for account_id, media_id, trigger in wanted:  # first, so their answers lead the results
        schedule.request_fetch(pipe, account_id, media_id, trigger, due_at)
    emitted = delivery.emit(redis, settings, out, pipeline=pipe)
    counts = _counts(parsed, fresh)
    for (label, outcome), n in counts.items():
        stats.incr(pipe, "igrelay_changes_total", n, field=label, outcome=outcome)
    for account_id in set().union(*(p.accounts for p in parsed)):
        pipe.set(contract.last_delivery(account_id), int(time.time()), ex=30 * 86400)  # for the watchdog
    dead = [p for p in parsed if p.refused]
    for p in dead:
        dead_letter(pipe, p)
    ids = [eid for eid, _ in entries]
    pipe.xack(contract.INBOX, contract.INBOX_GROUP, *ids)
    pipe.xdel(contract.INBOX, *ids)
    answers = pipe.execute()
    emitted.kick(redis, answers)
    folded = len(triggers) - sum(int(a) for a in answers[: len(wanted)])
    if folded:
        stats.incr(redis, "igrelay_fetch_coalesced_total", folded)
    result.deliveries += len(entries)
    result.changes.update({f"{label}:{outcome}": n for (label, outcome), n in counts.items()})
    result.records += len(out)
    result.fetches += len(triggers) - folded
    result.dead_letters += len(dead)
    log.info(
        "ingested batch",
        extra={
            "deliveries": len(entries),
            "changes": len(fresh),
            "records": len(out),
            "fetch_requests": len(wanted),
            "coalesced": folded,
            "dead_letters": len(dead),
        },
    )


def parse_entry(eid: str, data: dict[bytes, bytes], captured_at: str) -> Parsed:
    """The entry's changes checked at the worker's edge, each with its record; nothing here raises."""
    parsed = Parsed(eid, data)
    try:
        changes = list(iter_changes(data.get(b"b", b"")))
    except MalformedDelivery as exc:
        parsed.refused.append(f"not a Meta envelope: {exc}")
        return parsed
    except Exception as exc:  # e.g. RecursionError: one hostile body must not stop the inbox
        parsed.refused.append(f"unreadable body: {type(exc).__name__}")
        return parsed
    for change in changes:
        if change.object == "instagram" and NUMERIC_ID.fullmatch(change.account_id) and not change.test:
            parsed.accounts.add(change.account_id)
        if not change.known:
            parsed.counts["unknown", "ignored"] += 1
            continue
        if change.test:  # Meta sends the same Test payload on every click: each click is its own event
            change = replace(change, key=f"{change.key}|{eid}")
        reason = problem(change)
        if reason is None:
            try:
                parsed.items.append((change, _record(change, captured_at)))
            except Exception as exc:
                reason = f"unexpected {type(exc).__name__}"
        if reason is not None:
            parsed.counts[change.field, "invalid"] += 1
            parsed.refused.append(f"{change.field}: {reason}")
    return parsed


def dead_letter(pipe: Any, parsed: Parsed) -> None:
    """Keep the entry's body in the dead-letter stream (``igrelay failed``), with why, for a replay."""
    reasons = "; ".join(dict.fromkeys(parsed.refused))[:500]
    fields = {"b": parsed.data.get(b"b", b""), "t": parsed.data.get(b"t", b""), "e": parsed.eid, "r": reasons}
    fields["n"] = str(len(parsed.refused))
    pipe.xadd(contract.INBOX_DEAD, fields, maxlen=contract.INBOX_DEAD_MAXLEN, approximate=True)
    pipe.expire(contract.INBOX_DEAD, contract.INBOX_DEAD_TTL)
    stats.incr(pipe, "igrelay_inbox_dead_letters_total")
    log.warning("inbox entry dead-lettered", extra={"entry": parsed.eid, "reason": reasons})


def _counts(parsed: list[Parsed], fresh: list[tuple[Change, Record]]) -> Counter[tuple[str, str]]:
    fresh_ids = {id(c) for c, _r in fresh}
    counts: Counter[tuple[str, str]] = Counter()
    for p in parsed:
        counts.update(p.counts)
        for change, _record in p.items:
            counts[change.field, "new" if id(change) in fresh_ids else "duplicate"] += 1
    return counts


def _dedupe(redis: Redis, parsed: list[Parsed]) -> list[tuple[Change, Record]]:
    """Changes not seen before (or claimed by this same entry before a crash), with their records."""
    candidates = [(p.eid, item) for p in parsed for item in p.items]
    pipe = redis.pipeline(transaction=False)
    for eid, (change, _record) in candidates:
        pipe.set(_seen_key(change.key), eid, nx=True, get=True, ex=SEEN_TTL)
    claims = pipe.execute() if candidates else []
    fresh, taken = [], set()
    for (eid, item), previous in zip(candidates, claims, strict=True):
        mine = previous is None or text(previous) == eid
        if mine and item[0].key not in taken:
            taken.add(item[0].key)
            fresh.append(item)
    return fresh


def _seen_key(key: str) -> str:
    return contract.seen(hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest())


def _record(change: Change, captured_at: str) -> Record:
    if change.field == "story_insights" and not change.test:
        return records.story_insights_from_webhook(change, captured_at)
    return records.webhook_event(change, captured_at)
