"""Fault 4: the Graph API misbehaves (timeouts, 5xx, throttling, an expired token, a metric withdrawn
mid-run) while real burst workers refresh media from the sandbox."""

from __future__ import annotations

import time

from config import contract, stats
from tests.conftest import run_worker, sandbox_settings
from tests.faults.conftest import sink_rows
from workers import context, fetch, media_state, metric_registry, schedule

EXTRA_MEDIA = 24  # per account, on top of the sandbox's demo media
THREADS = 4
WITHDRAWN = "saved"  # a metric of every feed media, withdrawn by "Meta" after the first round
FAULTS = {"timeout": 3, "5xx": 6, "throttle": 3}  # injected into the first calls of the run
ROUNDS = (0, 100, 250, 500, 1000, 2000, 3000)  # seconds of virtual time at each dispatcher pass (< the 1 h refresh)


def test_graph_faults_lose_no_refresh_and_make_no_retry_storm(graph_sandbox, redis, tmp_path):
    """Every due media of the healthy account fetched despite 3 timeouts, 6 5xx and 3 throttles (next refresh
    scheduled); its calls <= 2 per media (type, insights) + 1 per fault + for the withdrawn metric 1 per
    (product type, media type) it is remembered for and call already in flight when it is learned;
    the account whose token expired flagged once after <= THREADS calls (besides those an injected fault answered
    first: that media is asked again later), then 0 calls; 0 tokens in URLs."""
    sb = graph_sandbox
    sb.timeout_delay = 1.5
    config = tmp_path / "igrelay.toml"
    config.write_text(f"[graph]\nread_timeout = 1\n[fetch]\nthreads = {THREADS}\n")
    settings = sandbox_settings(
        tmp_path, sb, IGRELAY_CONFIG=config, IGRELAY_SINKS=f"sqlite:///{tmp_path}/records.sqlite3"
    )
    context.install(context.Context(settings, redis))
    good, bad = sb.accounts[:2]
    for account in (good, bad):
        for i in range(EXTRA_MEDIA):
            sb.add_media(account, ("FEED", "REELS")[i % 2], ("IMAGE", "VIDEO")[i % 2], timestamp=time.time() - 3600)
    media = {a: [m.id for m in sb.data.media.values() if m.account_id == a and not m.parent_id] for a in (good, bad)}
    start = time.time()
    for account, ids in media.items():
        for media_id in ids:
            schedule.request_fetch(redis, account, media_id, "comments", start)
    sb.expire_token(bad)
    for kind, n in FAULTS.items():
        sb.fail_next(n, kind, route="media_node")
    sb.reset_calls()
    ctx = context.Context(settings, redis)
    try:
        for n, offset in enumerate(ROUNDS):
            fetch.dispatch(ctx, now=start + offset + 1)
            run_worker(settings)
            if n == 0:
                sb.withdraw_metric(WITHDRAWN)
        flagged_calls = len(sb.requests_log)
        for media_id in media[bad]:  # more comments for the flagged account's media
            schedule.request_fetch(redis, bad, media_id, "comments", start + ROUNDS[-1])
        fetch.dispatch(ctx, now=start + ROUNDS[-1] + 1)
        run_worker(settings)
        assert len(sb.requests_log) == flagged_calls  # no call while flagged
    finally:
        context.install(None)

    insights = [r for _id, kind, r in sink_rows(tmp_path / "records.sqlite3") if kind != "webhook_event"]
    answered = {r["media_id"] for r in insights}  # metrics, or Meta's reason why none (a story seen by 3)
    assert set(media[good]) <= answered, f"never fetched: {set(media[good]) - answered}"
    for media_id in {r["media_id"] for r in insights if r["metrics"]}:  # next refresh on the schedule: none dropped
        assert redis.zscore(contract.FETCH_DUE, contract.media_member(good, media_id)) is not None
    later = [r for _i, _k, r in sink_rows(tmp_path / "records.sqlite3") if WITHDRAWN in (r.get("unavailable") or {})]
    assert later and all(r["unavailable"][WITHDRAWN] == "unsupported" for r in later)

    calls = sb.requests_log
    good_calls = [c for c in calls if c["auth"] and _account_of(sb, c["path"]) == good]
    bad_calls = [c for c in calls if _account_of(sb, c["path"]) == bad]
    kinds = {(sb.media(m).media_product_type, sb.media(m).media_type) for m in media[good]}
    refusing = [k for k in kinds if WITHDRAWN in metric_registry.configured(settings, *k)]
    # describe + insights, +1 per fault, +1 per refusing (product type, media type) and call already in flight
    bound = 2 * len(media[good]) + sum(FAULTS.values()) + len(refusing) * THREADS
    print(f"{len(media[good])} media, {len(good_calls)} calls for them (bound {bound}), {len(bad_calls)} for the bad")
    assert len(good_calls) <= bound
    assert media_state.needs_reauth(redis, settings, bad) and not media_state.needs_reauth(redis, settings, good)
    reauth = stats.field("igrelay_account_needs_reauth_total")  # no per-account labels: one flag in all
    assert int(redis.hget(contract.STATS, reauth) or 0) == 1
    # Calls answered 190 were all in flight when the first 190 came back: one per thread at most.
    assert len([c for c in bad_calls if not c["fault"]]) <= THREADS, bad_calls
    assert sb.tokens_seen_in_url == 0


def _account_of(sb, path: str) -> str | None:  # type: ignore[no-untyped-def]
    media_id = path.strip("/").split("/")[1] if path.count("/") >= 2 else ""
    node = sb.data.media.get(media_id)
    return node.account_id if node else None
