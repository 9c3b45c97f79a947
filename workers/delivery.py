"""The records stage: every record to every configured sink, as its own retried delivery.

``emit`` puts the records each sink wants in that sink's outbox (``contract.outbox``, chunks of
``BATCH``), inside the caller's pipeline, so records and the work that made them are committed
together, and makes sure a ``workers.jobs.deliver`` job is on its way for each of those sinks.
One is enough: a "delivery pending" flag (``contract.outbox_pending``, set NX, EX
``contract.PENDING_TTL``, in the same transaction as the records) stands for a job that has not claimed
yet, which takes whatever waits when it does (the claim deletes the flag as it starts); only the
emit that set the flag enqueues a job, once its transaction has run. So under a steady stream a
sink gets one job per batch of work, not one per emit, as the web kicks the inbox's drain. A job
lost with a killed process before it was enqueued leaves records waiting, not gone: the tick
kicks any sink whose outbox is not empty (``resume``). A job names its sink by its name
(``config.sinkconf``), never by URL (URLs can hold passwords and Slack hook secrets).

A delivery job takes what is waiting in its sink's outbox, up to the sink's ``flush_records``, in
one atomic step that moves it under the job's own claim (``contract.outbox_claim(job id)``). So a
backlog goes out in a few large sends (one transaction each for the SQL sinks) while a quiet
stream still goes out at once, and the claim makes every step safe to repeat: a retried,
replayed or abandoned job sends its claim again, never someone else's records. A job whose
outbox was emptied by another finds nothing to do; one that leaves records behind (it took its
most) kicks the next, whether its send succeeds or fails, and records emitted after its claim
kicked a job of their own: so each record is tried at once and then retried with the claim it
is in, and a failing claim holds up no other. Jobs that name their records in their arguments (a
``Retry-After`` reschedule) send those.

``deliver`` maps the sink exceptions to retry policy, in this one place:

- success: non-idempotent sinks get per-record marks (``workers.sinks._ledger``) so no retry,
  replay or duplicate job sends a record twice; at-most-once sinks (Slack) claim before sending;
- ``SinkError``: records that got through are marked; the job is retried on its schedule
  (exponential with jitter over ``retry_span``, default 1 day), or, when the sink said
  ``Retry-After``, the rest is re-enqueued with ``enqueue_in`` (never ``time.sleep``);
- ``PermanentSinkError`` or no retries left: dead-lettered in RQ's FailedJobRegistry
  (``workers.failed``), counted as ``outcome="dead_letter"``; ``SinkGone`` also disables the sink.
  A dead letter keeps its claim for as long as RQ keeps the job, so a replay sends it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry, get_current_job
from rq.job import Job

from config import contract, stats
from config.rq import DAY, QUEUE, SERIALIZER, deliver_preset, presets
from config.settings import ConfigError, Settings
from workers import sinks
from workers.sinks import JsonRecord, PermanentSinkError, ReadRecord, Record, Sink, SinkError, SinkGone
from workers.sinks import _ledger as ledger

BATCH = contract.OUTBOX_CHUNK  # records per outbox chunk
MAX_CHUNKS = 1000  # chunks per claim, whatever their size
STAT = "igrelay_sink_deliveries_total"

# Move chunks from the head of the outbox (KEYS[1]) to the claim (KEYS[2]) until the next would pass
# ARGV[1] records, deleting the sink's pending flag (KEYS[3]) first: emits from now on kick a job of
# their own. A claim that exists already is returned as it is (the job ran before). The first element
# of the answer is how many chunks are left in the outbox. LMOVE, not LPOP + RPUSH: replicas and the
# AOF get the command, not the records a second time.
CLAIM = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  local claim = redis.call('LRANGE', KEYS[2], 0, -1)
  table.insert(claim, 1, redis.call('LLEN', KEYS[1]))
  return claim
end
redis.call('DEL', KEYS[3])
local taken, total = {redis.call('LLEN', KEYS[1])}, 0
while #taken <= tonumber(ARGV[3]) do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then break end
  local n = tonumber(string.match(head, '^(%d+):')) or 1
  if total > 0 and total + n > tonumber(ARGV[1]) then break end
  redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  taken[#taken + 1] = head
  total = total + n
end
if #taken > 1 then
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  taken[1] = taken[1] - (#taken - 1)
end
return taken
"""

log = logging.getLogger("igrelay.delivery")


def job_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Enqueue keywords for a delivery to a sink with these TOML ``options``."""
    return deliver_preset(options)


@dataclass
class Emitted:
    """The sinks ``emit`` queued records for, and where their pending flags' answers are in the pipeline."""

    settings: Settings
    names: list[str]
    first: int = 0  # index of the first flag's answer in the pipeline's results

    def kick(self, redis: Redis, answers: Sequence[Any]) -> int:
        """Once the pipeline has run (``answers``): enqueue a job for each sink whose flag this set.
        Returns the jobs enqueued."""
        flags = answers[self.first : self.first + len(self.names)]
        return _enqueue_all(redis, self.settings, [name for name, won in zip(self.names, flags, strict=True) if won])


def emit(redis: Redis, settings: Settings, records: Sequence[Record], pipeline: Any = None) -> Emitted:
    """Queue ``records`` in the outbox of every sink that wants them, and set each one's pending flag
    unless a job stands for it already, in one transaction.

    With a caller's ``pipeline`` (a transaction) nothing is sent yet: once the caller has executed it,
    it calls ``kick(redis, answers)`` on what this returns. Without one, all is done here."""
    if not records:
        return Emitted(settings, [])
    target = pipeline if pipeline is not None else redis.pipeline(transaction=True)
    names = []
    texts = [_encode(r) for r in records]  # once, whatever the number of sinks
    for name, (_url, options) in sinks.configured(settings).items():
        chosen = [t for r, t in zip(records, texts, strict=True) if wants(options, r)]
        if not chosen:
            continue
        chunks = [chosen[start : start + BATCH] for start in range(0, len(chosen), BATCH)]
        target.rpush(contract.outbox(name), *(f"{len(c)}:" + "\n".join(c) for c in chunks))
        names.append(name)
    for kind, n in Counter(r["kind"] for r in records).items():
        stats.incr(target, "igrelay_records_total", n, kind=kind)
    emitted = Emitted(settings, names, len(target))
    for name in names:  # in the same transaction as the records: see ``CLAIM``
        target.set(contract.outbox_pending(name), b"1", nx=True, ex=contract.PENDING_TTL)
    if pipeline is None:
        emitted.kick(redis, target.execute())
    return emitted


def kick(redis: Redis, settings: Settings, names: Sequence[str]) -> int:
    """Make sure a delivery job is on its way for each sink in ``names`` (records wait in its outbox):
    enqueue one where no job is pending yet. Returns the jobs enqueued."""
    if not names:
        return 0
    with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.set(contract.outbox_pending(name), b"1", nx=True, ex=contract.PENDING_TTL)
        won = [name for name, first in zip(names, pipe.execute(), strict=True) if first]
    return _enqueue_all(redis, settings, won)


def _enqueue_all(redis: Redis, settings: Settings, names: Sequence[str]) -> int:
    """A delivery job for each sink in ``names`` (still configured), in one transaction."""
    table = sinks.configured(settings)
    names = [name for name in names if name in table]
    if names:
        queue = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
        with redis.pipeline(transaction=True) as pipe:
            pipe.multi()  # explicit, as RQ's enqueue into a caller's pipeline expects
            for name in names:
                _enqueue(queue, pipe, name, table[name][1])
            pipe.execute()
    return len(names)


def resume(ctx: Any) -> int:
    """A periodic task (``ctx.redis``, ``ctx.settings``): kick every sink whose outbox holds records, in
    case the process that emitted them died before its kick. Returns the jobs enqueued."""
    names = list(sinks.configured(ctx.settings))
    with ctx.redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.exists(contract.outbox(name))
        waiting = [name for name, found in zip(names, pipe.execute(), strict=True) if found]
    return kick(ctx.redis, ctx.settings, waiting)


def _enqueue(queue: Queue, pipeline: Any, name: str, options: Mapping[str, Any]) -> None:
    """A delivery job for the sink called ``name``, to take what waits in its outbox."""
    queue.enqueue(
        contract.Jobs.DELIVER,
        args=(name,),
        pipeline=pipeline,
        description=f"deliver to {name}",
        meta={"sink": name, "attempts": 0},
        **job_options(options),
    )


def wants(options: Mapping[str, Any], record: Record) -> bool:
    """True when the sink's filters (TOML ``kinds``, ``accounts``, ``media_product_types``,
    ``fields``) let ``record`` through; an absent filter lets everything through."""
    checks = (
        ("kinds", record.get("kind")),
        ("accounts", record.get("account_id")),
        ("media_product_types", record.get("media_product_type")),
        ("fields", (record.get("event") or {}).get("field")),
    )
    for option, value in checks:
        allowed = options.get(option)
        if allowed and value is not None and value not in allowed:
            return False
        if allowed and value is None and option in ("kinds", "accounts"):
            return False
    return True


def deliver(redis: Redis, settings: Settings, name: str, records: Sequence[Record] | None = None) -> int:
    """Send ``records``, or what waits in the outbox of the sink called ``name``; raise so RQ retries on
    failure. Returns how many records the job had."""
    table = sinks.configured(settings)
    job = get_current_job()
    if name not in table:
        dropped = _drop(redis, job, name)
        count = len(records) if records is not None else dropped
        log.warning("sink no longer configured; delivery dropped", extra={"sink": name, "records": count})
        return 0
    url, options = table[name]
    sink = _load(name, url, options, settings)
    claim, left = None, 0
    try:
        if records is None:
            claim = _claim_id(job)
            parse = not (sink.reads_json and sink.idempotent)
            records, left = _take(redis, name, claim, type(sink).flush_records, claim_ttl(options), parse)
            if not records:
                return 0
        _count_attempt(job, len(records))
        if ledger.is_disabled(redis, name):
            _dead_letter(redis, job, name, len(records))
            raise PermanentSinkError(f"sink {name} is disabled (it answered 410 Gone); replay it to re-enable")
        _send(redis, job, name, sink, records, claim)
    except BaseException:
        if left:  # this claim waits for its retry; what waits behind it gets a job now
            with suppress(RedisError):
                kick(redis, settings, [name])
        raise
    finally:
        sink.close()
    if claim is not None:
        redis.delete(contract.outbox_claim(claim))  # sent (or rescheduled with its records)
    if left:  # records emitted after the claim kicked a job of their own; these were here before it
        kick(redis, settings, [name])
    return len(records)


def claim_ttl(options: Mapping[str, Any]) -> int:
    """How long a claim lives: through every retry and the dead letter's retention, and a day more."""
    preset = job_options(options)
    return int(sum(preset["retry"].intervals) + preset["failure_ttl"] + DAY)


def _claim_id(job: Job | None) -> str:
    return job.id if job is not None else uuid.uuid4().hex


def _take(redis: Redis, name: str, claim: str, most: int, ttl: int, parse: bool) -> tuple[list[Record], int]:
    """This job's claim, made now from the head of the outbox or as an earlier attempt made it: records
    (``ReadRecord``), or their text alone (``JsonRecord``) when not ``parse``; and how many chunks are
    left waiting in the outbox."""
    keys = [contract.outbox(name), contract.outbox_claim(claim), contract.outbox_pending(name)]
    left, *chunks = redis.eval(CLAIM, 3, *keys, most, ttl, MAX_CHUNKS)
    lines = [line for chunk in chunks for line in chunk.decode().partition(":")[2].split("\n")]
    del chunks  # a claim can be 5,000 records: hold as few copies of it at once as possible
    if not lines:
        return [], left
    if not parse:
        return cast(list[Record], [JsonRecord(line) for line in lines]), left  # as_json is all the sink reads
    records = json.loads(f"[{','.join(lines)}]")  # one parse of the lot: a third faster than line by line
    for i, line in enumerate(lines):
        records[i] = ReadRecord(records[i], line)  # each parsed dict freed as its copy is made
    return cast(list[Record], records), left


def _drop(redis: Redis, job: Job | None, name: str) -> int:
    """Drop what waits for a sink that is no longer configured; returns how many records that was."""
    keys = [contract.outbox(name)] + ([contract.outbox_claim(job.id)] if job is not None else [])
    with redis.pipeline(transaction=True) as pipe:
        for key in keys:
            pipe.lrange(key, 0, -1)
        pipe.delete(*keys)
        *found, _ = pipe.execute()
    return sum(int(chunk.partition(b":")[0] or 0) for chunks in found for chunk in chunks)


def _load(name: str, url: str, options: Mapping[str, Any], settings: Settings) -> Sink:
    try:
        return sinks.load(url, options, settings)
    except (ConfigError, ValueError) as exc:  # the text may quote the URL: keep only the type
        raise PermanentSinkError(f"sink {name}: invalid configuration ({type(exc).__name__})") from None


def _send(redis: Redis, job: Job | None, name: str, sink: Sink, records: Sequence[Record], claim: str | None) -> None:
    keyed = sink.idempotent
    pending = list(records) if keyed else ledger.unsent(redis, name, records)
    if len(pending) < len(records):
        stats.incr(redis, STAT, len(records) - len(pending), sink=name, outcome="already_sent")
    if not pending:
        return
    if sink.at_most_once:
        sink.claim = ledger.claimer(redis, name)
    try:
        sink.send(pending)
    except SinkError as exc:
        _failed(redis, job, name, sink, pending, exc, claim)
        return
    except Exception as exc:  # a bug or an unwrapped driver error: its text may hold a URL
        log.exception("sink raised an unexpected error", extra={"sink": name})
        raise SinkError(f"sink {name}: unexpected {type(exc).__name__}") from None
    if not keyed and not sink.at_most_once:
        ledger.mark(redis, name, [str(r["id"]) for r in pending])
    stats.incr(redis, STAT, len(pending), sink=name, outcome="delivered")
    log.info("delivered", extra={"sink": name, "records": len(pending)})


def _failed(
    redis: Redis, job: Job | None, name: str, sink: Sink, pending: list[Record], exc: SinkError, claim: str | None
) -> None:
    """Settle a failed send: mark what got through, then retry, reschedule or dead-letter the rest."""
    done = set(exc.done)
    rest = [r for r in pending if str(r["id"]) not in done] if done else pending
    if sink.at_most_once:
        ledger.release(redis, name, [str(r["id"]) for r in rest])
    elif not sink.idempotent and done:
        ledger.mark(redis, name, done)
    if done:
        stats.incr(redis, STAT, len(done), sink=name, outcome="delivered")
    stats.incr(redis, STAT, len(rest), sink=name, outcome="failed")
    log.warning("delivery failed", extra={"sink": name, "records": len(rest), "error": str(exc)})
    if isinstance(exc, SinkGone):
        ledger.disable(redis, name, time.time())
    left = (job.retries_left or 0) if job is not None else 0
    if exc.retry_after and job is not None and not isinstance(exc, PermanentSinkError):
        left = left - (0 if done else 1)  # progress does not use up an attempt
        if left >= 0:
            _reschedule(redis, job, name, rest, exc.retry_after, left, claim)
            return
    if isinstance(exc, PermanentSinkError) or left <= 0:
        _dead_letter(redis, job, name, len(rest))
    raise exc


def _reschedule(
    redis: Redis, job: Job, name: str, records: list[Record], delay: float, left: int, claim: str | None
) -> None:
    """Enqueue ``records`` again in ``delay`` seconds with ``left`` retries of the same schedule (the new
    job names them in its arguments, and the claim they came from goes in the same transaction)."""
    items: list[Any] = records  # JsonRecords, for a sink that reads_json: the new job's arguments are dicts
    records = [json.loads(r) if isinstance(r, JsonRecord) else r for r in items]
    intervals = (job.retry_intervals or [])[-left:] if left else []
    # The rest of the job's own schedule, not a fresh one: Retry-After is no reason for more attempts.
    options = {**presets()["deliver"], "retry": Retry(max=left, interval=intervals) if left else None}
    queue = Queue(job.origin, connection=redis, serializer=SERIALIZER)
    with redis.pipeline(transaction=True) as pipe:
        pipe.multi()  # explicit, as RQ's enqueue into a caller's pipeline expects
        queue.enqueue_in(
            timedelta(seconds=delay),
            contract.Jobs.DELIVER,
            args=(name, records),
            description=f"deliver {len(records)} records to {name}",
            meta={"sink": name, "attempts": job.meta.get("attempts", 1), "records": len(records)},
            pipeline=pipe,
            **options,
        )
        if claim is not None:
            pipe.delete(contract.outbox_claim(claim))
        pipe.execute()
    stats.incr(redis, STAT, len(records), sink=name, outcome="rescheduled")
    log.info("rescheduled after Retry-After", extra={"sink": name, "records": len(records), "delay": delay})


def _dead_letter(redis: Redis, job: Job | None, name: str, count: int) -> None:
    """Make the failure final: RQ will not retry and keeps the job in its FailedJobRegistry."""
    if job is not None:
        job.retries_left = 0  # the very Job object RQ's worker consults after we raise
        stats.incr(redis, STAT, count, sink=name, outcome="dead_letter")


def _count_attempt(job: Job | None, records: int) -> None:
    if job is not None:
        job.meta["attempts"] = int(job.meta.get("attempts", 0)) + 1
        job.meta["records"] = records  # for `igrelay failed`, which does not read claims
        job.save_meta()


# An outbox chunk is ``COUNT:`` and one record's JSON a line. ASCII (a record may hold a lone surrogate
# from a payload's escapes, which UTF-8 cannot carry), compact; json.dumps would build this encoder each call.
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
