"""What the web and worker processes share by name: every Redis key igrelay owns and every job path.

``webhook`` and ``workers`` never import each other; they meet in Redis. Every ``igrelay:*`` key
(or the function that builds it) and every dotted job path is defined here and nowhere else, the way
RQ keeps its own key names in ``rq/keys.py``. A new key or job goes here first; Lua scripts take
these names as ``KEYS``/``ARGV``, never as literals. RQ's own keys start with ``rq:``.
"""

from __future__ import annotations

PREFIX = "igrelay:"

# --- the inbox: the web writes verified deliveries, ``drain_inbox`` reads them ---
INBOX = PREFIX + "inbox"  # stream; fields b = body bytes, t = received at
INBOX_GROUP = "ingest"  # the stream's consumer group
INBOX_PENDING = PREFIX + "inbox:pending"  # string, EX: "a drain job is on its way or running"
# How long a "job on its way" flag (INBOX_PENDING, ``outbox_pending``) covers later work. Short, so a job
# lost with a killed process is replaced by the next kick (or the tick) within seconds; a job too many
# finds nothing and ends at once.
PENDING_TTL = 5
# Stream of inbox entries the worker could not act on (``igrelay failed``); fields b, t as in the inbox,
# plus e = the inbox entry id, r = why, n = how many changes were refused. Capped at INBOX_DEAD_MAXLEN
# entries, and gone INBOX_DEAD_TTL after the last one (as long as a failed ingest job is kept).
INBOX_DEAD = PREFIX + "inbox:dead"
INBOX_DEAD_MAXLEN = 10_000
INBOX_DEAD_TTL = 7 * 86400

# --- counters behind /metrics ---
STATS = PREFIX + "stats"  # hash
STATS_MINUTES = PREFIX + "stats:minutes"  # hash: minute (epoch // 60) -> "deliveries records" totals then

# --- fetch scheduling ---
FETCH_DUE = PREFIX + "fetch:due"  # zset: member ACCOUNT:MEDIA, score = when to fetch
FETCH_TRIGGER = PREFIX + "fetch:trigger"  # hash: member -> trigger of the pending fetch (none for "schedule")
FETCH_RUNNING_PREFIX = PREFIX + "fetch:running:"  # + ACCOUNT:MEDIA, string with a short TTL
TICK_ALIVE = PREFIX + "tick:alive"  # string, EX: a recent tick scheduled the next one


def media_member(account: str, media_id: str) -> str:
    """How a media is named inside the fetch schedule and its per-media keys."""
    return f"{account}:{media_id}"


def media(account: str, media_id: str) -> str:
    """Hash of a media's fetch state."""
    return PREFIX + "media:" + media_member(account, media_id)


def fetch_running(account: str, media_id: str) -> str:
    """Set while a fetch of the media is in flight."""
    return FETCH_RUNNING_PREFIX + media_member(account, media_id)


def seen(digest: str) -> str:
    """Per-change dedupe mark; value = the stream entry id that claimed it."""
    return PREFIX + "seen:" + digest


# --- per account ---
def account_key(account: str, what: str) -> str:
    """``igrelay:account:ID:WHAT``; the ``what`` names follow."""
    return f"{PREFIX}account:{account}:{what}"


PAUSED_UNTIL = "paused_until"  # string, TTL: Meta throttled the account until this epoch second
NEEDS_REAUTH = "needs_reauth"  # string: fingerprint of the token Meta refused
KNOWN_MEDIA = "media"  # zset of discovered media ids
LAST_DELIVERY = "last_delivery"  # string: last time a delivery named the account


def paused_until(account: str) -> str:
    return account_key(account, PAUSED_UNTIL)


def needs_reauth(account: str) -> str:
    return account_key(account, NEEDS_REAUTH)


def known_media(account: str) -> str:
    return account_key(account, KNOWN_MEDIA)


def last_delivery(account: str) -> str:
    return account_key(account, LAST_DELIVERY)


def account_day(account: str, day: str) -> str:
    """Hash of the account's last ``account_insights`` of Meta's day ``day``: record ``id``, ``followers_count``."""
    return account_key(account, "day:" + day)


def token(account: str) -> str:
    """Hash of a token igrelay refreshed (or was given through the login flow) for the account."""
    return PREFIX + "token:" + account


def watchdog(account: str) -> str:
    """Hash of the account's subscription problems and since when."""
    return PREFIX + "watchdog:" + account


def lock(task: str, subject: str) -> str:
    """A "done recently" mark so that many workers run a periodic task once per subject."""
    return f"{PREFIX}lock:{task}:{subject}"


def withdrawn_metrics(version: str, kind: str, media_type: str | None = None) -> str:
    """Set of metrics Meta refused for that Graph version, product type and media type."""
    return f"{PREFIX}metrics:withdrawn:{version}:{kind}:{media_type or '-'}"


def metrics_probe(version: str, kind: str, media_type: str | None = None) -> str:
    """String, EX: a withdrawn set was asked again recently; while it lives no media re-probes it."""
    return f"{PREFIX}metrics:probe:{version}:{kind}:{media_type or '-'}"


# --- accounts connected through Meta's login (the environment's accounts are in settings) ---
ACCOUNTS = PREFIX + "accounts"  # set of connected account ids
ACCOUNT_INFO = "info"  # hash: username, login_type, connected_at, page_id, page_sealed (sealed Page token), subscribed
NEEDS_RECONNECT_COUNT = PREFIX + "accounts:needs_reconnect"  # string: how many accounts need it (/metrics)
ANNOUNCED = "announced"  # string: the needs_reconnect mark already sent out as an ``account_status`` record


def account_info(account: str) -> str:
    return account_key(account, ACCOUNT_INFO)


def announced(account: str) -> str:
    return account_key(account, ANNOUNCED)


def connect_link(digest: str) -> str:
    """A single-use ``/connect`` link (by the SHA-256 of its secret), EX 1 h."""
    return PREFIX + "connect:link:" + digest


def connect_state(state: str) -> str:
    """A login flow's single-use OAuth ``state``, EX 10 min."""
    return PREFIX + "connect:state:" + state


# --- periodic per-account work, by due time (config.periodic) ---
def due(task: str) -> str:
    """Zset of accounts by when ``task`` (poll, insights, token, watchdog, status, backfill) is next due for them."""
    return PREFIX + "due:" + task


DUE_SEQ = (
    PREFIX + "due:seq"
)  # counter: accounts entered so far (an account's phase is the golden-ratio point of its number)
DUE_FINGERPRINT = PREFIX + "due:env:fingerprint"  # string: tag of the environment's accounts the sets were synced to
DUE_ENV = PREFIX + "due:env"  # set: the environment's accounts at that sync (so a dropped one leaves the sets)
RECONNECT_NEEDED = PREFIX + "accounts:needs_reconnect:ids"  # set of accounts needing reconnection (its SCARD is shown)


# --- Meta's budget: Graph calls per account and hour ---
def account_calls(account: str, hour: int) -> str:
    """Hash of the account's Graph calls in the clock hour ``hour`` (epoch // 3600): purpose -> count; EX 3 h."""
    return account_key(account, f"calls:{hour}")


def calls_by_account(hour: int) -> str:
    """Zset of every account's Graph calls in the clock hour ``hour``: account -> count (max and count on /metrics)."""
    return f"{PREFIX}calls:{hour}"


CALLS_TTL = 3 * 3600  # the hour and the one before it stay readable


# --- backfill: an account's history, paced by a per-step budget and resumable from its cursor ---
BACKFILLS = PREFIX + "backfill:active"  # set of accounts whose backfill is not finished


def backfill(account: str) -> str:
    """Hash of the account's backfill: since, cursor, listed, media_found, media_done, days_wanted, days_done,
    started_at, finished_at."""
    return PREFIX + "backfill:" + account


def backfilled_media(account: str) -> str:
    """Set of media ids the account's backfills fetched (a second backfill fetches none of them again)."""
    return PREFIX + "backfill:" + account + ":media"


def backfilled_days(account: str) -> str:
    """Set of Meta days (``YYYY-MM-DD``) whose account insights a backfill fetched."""
    return PREFIX + "backfill:" + account + ":days"


# --- sinks ---
def sent(sink: str, record_id: str) -> str:
    """A record delivered to (or claimed for) a sink that has no keys of its own."""
    return f"{PREFIX}sent:{sink}:{record_id}"


def outbox(sink: str) -> str:
    """List of records waiting for a sink: each element is one emitted chunk of at most
    ``OUTBOX_CHUNK`` records, ``COUNT:`` then a record's JSON a line."""
    return PREFIX + "outbox:" + sink


OUTBOX_CHUNK = 500


def outbox_pending(sink: str) -> str:
    """String, EX: "a delivery job for this sink is on its way and has not claimed yet"."""
    return PREFIX + "outbox-pending:" + sink


def outbox_claim(claim: str) -> str:
    """List of the outbox chunks one delivery job took (``claim`` is its job id), until they are sent."""
    return PREFIX + "outbox-claim:" + claim


def sink_disabled(sink: str) -> str:
    """Epoch seconds at which the sink answered 410 Gone."""
    return PREFIX + "sink:disabled:" + sink


def stream_ids(stream: str) -> str:
    """Zset of record ids already added to a Redis stream sink (kept in the target Redis)."""
    return PREFIX + "stream-ids:" + stream


# --- the web console ---
def console_login_failures(client: str) -> str:
    """Counter of failed console logins from one client address, EX 60 s."""
    return PREFIX + "console:login-failures:" + client


# --- jobs: the dotted paths RQ imports; the worker runs these and nothing else ---
class Jobs:
    """Every RQ entry point igrelay enqueues, by dotted path."""

    DRAIN_INBOX = "workers.jobs.drain_inbox"  # enqueued by the web
    DELIVER = "workers.jobs.deliver"
    TICK = "workers.jobs.tick"
    FETCH_BATCH = "workers.jobs.fetch_batch"
    POLL_ACCOUNT = "workers.jobs.poll_account"
    ACCOUNT_INSIGHTS = "workers.jobs.account_insights"
    REFRESH_TOKEN = "workers.jobs.refresh_token"
    WATCHDOG = "workers.jobs.watchdog"
    CONNECTED = "workers.account_jobs.connected"  # enqueued by the web after a login: subscribe, backfill
    SUBSCRIBE_ACCOUNT = "workers.account_jobs.subscribe_account"
    BACKFILL_STEP = "workers.account_jobs.backfill_step"
    BACKFILL = "workers.account_jobs.start_backfill"  # enqueued by the console


JOB_PATHS = frozenset(v for k, v in vars(Jobs).items() if k.isupper())
# Short, igrelay-owned, idempotent jobs the worker runs in its own process instead of forking a work
# horse for each (a fork costs 25-30 ms, longer than the job): the inbox drain, sink deliveries and the
# tick (with nothing due it only claims from sorted sets; every 5 s a fork held up the deliveries behind it).
IN_PROCESS_JOBS = frozenset({Jobs.DRAIN_INBOX, Jobs.DELIVER, Jobs.TICK})
