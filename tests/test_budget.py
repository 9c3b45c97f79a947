"""Meta's budget: Graph calls counted per account, hour and purpose; shown per account, aggregated on /metrics."""

from __future__ import annotations

from config import accounts, budget
from workers import polling


def test_calls_are_counted_per_account_and_purpose(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    graph_sandbox.reset_calls()
    polling.poll_account(redis, graph_settings, account)
    assert budget.hour(redis, account) == {"poll": graph_sandbox.total_calls}
    assert accounts.describe(redis, graph_settings, account)["graph_calls"]["this_hour"] == graph_sandbox.total_calls
    assert budget.aggregates(redis, ago=0) == (1, graph_sandbox.total_calls)


def test_metrics_show_aggregates_without_account_ids(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    from webhook import prometheus

    account = graph_sandbox.accounts[0]
    with redis.pipeline() as pipe:
        budget.count(pipe, account, "media", now=budget.current_hour() * 3600 - 10)  # the last whole hour
        pipe.execute()
    text = prometheus.render(redis).decode()
    assert "igrelay_account_graph_calls_last_hour_max 1.0" in text and account not in text
