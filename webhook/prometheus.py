"""``/metrics``: Prometheus text built from igrelay's stats (the shared Redis counters) and queue depths."""

from __future__ import annotations

import hmac
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis import Redis
from redis.exceptions import RedisError

from config import budget, contract, stats
from config.rq import QUEUES

HELP = {
    "igrelay_deliveries_total": "Webhook POSTs by outcome",
    "igrelay_handshakes_total": "Subscription handshakes by outcome (answered, refused)",
    "igrelay_changes_total": "Changes parsed from deliveries, by field and outcome",
    "igrelay_fetch_coalesced_total": "Fetch requests folded into an already pending fetch",
    "igrelay_jobs_total": "igrelay jobs by name and outcome",
    "igrelay_graph_calls_total": "Graph API calls by outcome",
    "igrelay_rate_limit_pauses_total": "Accounts paused because Meta throttled them",
    "igrelay_fetches_total": "Media fetches by outcome (ok, terminal, throttled, auth, transient, failed)",
    "igrelay_fetch_skipped_total": "Due fetches dropped, by reason (an account needing reconnection)",
    "igrelay_account_needs_reauth_total": "Accounts flagged for reconnection (token expired or revoked)",
    "igrelay_records_total": "Records emitted, by kind",
    "igrelay_sink_deliveries_total": "Record deliveries by sink and outcome",
    "igrelay_watchdog_alerts_total": "Subscription problems found, by problem",
}


def authorized(token: str | None, header: str | None) -> bool:
    """True when no token is configured, or ``header`` is ``Bearer <token>`` (compared in constant time)."""
    if not token:
        return True
    scheme, _sep, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class RedisStatsCollector:
    """Reads igrelay's stats hash, RQ's queues and the sinks' outboxes on every scrape."""

    def __init__(self, redis: Redis, sinks: Sequence[str] = ()) -> None:
        self.redis = redis
        self.sinks = list(sinks)
        self.needs_reconnect = 0
        self.outboxes: list[int] = []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("igrelay_redis_up", "1 when Redis answered this scrape")
        try:
            raw = self.redis.hgetall(contract.STATS)
            depths = self._depths()
            called, most = budget.aggregates(self.redis)
        except RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from self._counters(raw)
        yield depths
        # A sink that keeps failing (its database down, its URL refusing) shows as an outbox that grows.
        outboxes = GaugeMetricFamily(
            "igrelay_sink_outbox_chunks",
            f"Chunks of records (up to {contract.OUTBOX_CHUNK} each) waiting for a sink",
            labels=["sink"],
        )
        for name, chunks in zip(self.sinks, self.outboxes, strict=True):
            outboxes.add_metric([name], chunks)
        yield outboxes
        # One number for every account: no account id is shown to whoever can scrape.
        accounts = GaugeMetricFamily("igrelay_account_needs_reconnect", "Instagram logins to reconnect (token refused)")
        accounts.add_metric([], self.needs_reconnect)
        yield accounts
        yield from self._budget(called, most)

    @staticmethod
    def _budget(called: int, most: int) -> Iterator[Metric]:
        """Meta's budget in aggregate over the last whole clock hour (per-account counts: the console and CLI)."""
        gauge = GaugeMetricFamily("igrelay_account_graph_calls_last_hour_active", "Instagram logins with Graph calls")
        gauge.add_metric([], called)
        yield gauge
        gauge = GaugeMetricFamily("igrelay_account_graph_calls_last_hour_max", "Most Graph calls for one login")
        gauge.add_metric([], most)
        yield gauge

    def _counters(self, raw: Mapping[Any, Any]) -> Iterator[Metric]:
        grouped: dict[str, dict[tuple[tuple[str, str], ...], int]] = defaultdict(lambda: defaultdict(int))
        for key, count in raw.items():
            name, labels = stats.parse_field(key.decode() if isinstance(key, bytes) else str(key))
            # Account ids are not for anyone who can scrape: counters kept per account before are summed.
            labels.pop("account", None)
            grouped[name][tuple(sorted(labels.items()))] += int(count)
        for name, samples in sorted(grouped.items()):
            label_names = sorted({k for pairs in samples for k, _ in pairs})
            family = CounterMetricFamily(name.removesuffix("_total"), HELP.get(name, name), labels=label_names)
            for pairs, total in samples.items():
                family.add_metric([dict(pairs).get(k, "") for k in label_names], total)
            yield family

    def _depths(self) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily("igrelay_queue_depth", "Items waiting, by queue", labels=["queue"])
        pipe = self.redis.pipeline(transaction=False)
        for name in QUEUES:
            pipe.llen(f"rq:queue:{name}")
        for name in QUEUES:
            pipe.zcard(f"rq:failed:{name}")
        pipe.xlen(contract.INBOX)
        pipe.zcard(contract.FETCH_DUE)
        pipe.get(contract.NEEDS_RECONNECT_COUNT)
        for name in self.sinks:
            pipe.llen(contract.outbox(name))
        replies = pipe.execute()
        self.outboxes = replies[len(replies) - len(self.sinks) :]
        *values, reconnect = replies[: len(replies) - len(self.sinks)]
        self.needs_reconnect = int(reconnect or 0)
        n = len(QUEUES)
        for name, value in zip(QUEUES, values[:n], strict=True):
            gauge.add_metric([name], value)
        for name, value in zip(QUEUES, values[n : 2 * n], strict=True):
            gauge.add_metric([f"{name}:failed"], value)
        gauge.add_metric(["inbox"], values[-2])
        gauge.add_metric(["fetch_due"], values[-1])
        return gauge


def render(redis: Redis, sinks: Sequence[str] = ()) -> bytes:
    """The exposition text for one scrape; ``sinks``: the configured sinks' names, for their outboxes."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisStatsCollector(redis, sinks))
    return generate_latest(registry)
