"""Periodic per-account work found by due time: accounts enter and leave the due sets; a tick is O(work due)."""

from __future__ import annotations

import time
from typing import Any

from redis import Redis
from redis.connection import Connection, ConnectionPool

from config import accounts, contract, periodic
from tests.conftest import TEST_REDIS_URL, make_settings
from workers import context, polling, ticker

FIRST = 17841400000000000


def env_accounts(tmp_path, n: int, **extra: str):  # type: ignore[no-untyped-def]
    tokens = ",".join(f"{FIRST + i}=tok{i}" for i in range(n))
    return make_settings(tmp_path, IG_ACCESS_TOKENS=tokens, GRAPH_API_URL="http://127.0.0.1:9", **extra)


def members(redis: Redis, task: str) -> set[str]:
    return {m.decode() for m in redis.zrange(contract.due(task), 0, -1)}


def test_connected_account_enters_every_set_and_leaves_on_remove(tmp_path, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    settings = env_accounts(tmp_path, 1, IGRELAY_LOGIN_TYPE="instagram")
    login = accounts.Login("17841499999999999", "someone", "tok-connected", 60 * 86400)
    accounts.connect(redis, settings, login)
    for task in periodic.EVERY_ACCOUNT:
        assert login.id in members(redis, task)
    accounts.remove(redis, settings, login.id)
    for task in periodic.TASKS:
        assert login.id not in members(redis, task)


def test_environment_accounts_enter_and_leave_when_the_list_changes(tmp_path, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    three, two = env_accounts(tmp_path, 3), env_accounts(tmp_path, 2)
    polling.poll_due(context.Context(three, redis))
    assert members(redis, periodic.POLL) == {str(FIRST + i) for i in range(3)}
    before = redis.zscore(contract.due(periodic.POLL), str(FIRST))
    polling.poll_due(context.Context(two, redis))  # the environment dropped one account
    assert members(redis, periodic.POLL) == {str(FIRST), str(FIRST + 1)}
    assert redis.zscore(contract.due(periodic.POLL), str(FIRST)) == before  # those kept keep their phase


def test_phases_spread_accounts_over_the_interval(tmp_path, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    settings = env_accounts(tmp_path, 120)
    now = time.time()
    polling.poll_due(context.Context(settings, redis), now)
    scores = sorted(s for _, s in redis.zrange(contract.due(periodic.POLL), 0, -1, withscores=True))
    assert now <= scores[0] and scores[-1] < now + settings.poll_interval
    slots = [int((s - now) // ticker.TICK_SECONDS) for s in scores]
    assert max(slots.count(k) for k in set(slots)) <= 2  # 120 accounts over 120 ticks of a 10-minute interval


def test_claim_moves_an_account_to_its_next_phase_point(tmp_path, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    settings = env_accounts(tmp_path, 1)
    account = str(FIRST)
    polling.poll_due(context.Context(settings, redis))
    at = redis.zscore(contract.due(periodic.POLL), account)
    assert at is not None
    late = at + 3.5 * settings.poll_interval  # the worker was down for a while: one poll, not four
    assert periodic.claim(redis, settings, periodic.POLL, late) == [(account, at)]
    assert redis.zscore(contract.due(periodic.POLL), account) == at + 4 * settings.poll_interval
    assert periodic.claim(redis, settings, periodic.POLL, late) == []


class Counting(Connection):
    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        Counting.sent += 1
        super().send_packed_command(command, check_health)


def test_a_tick_with_nothing_due_makes_a_few_round_trips(tmp_path, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    settings = env_accounts(tmp_path, 1000, IGRELAY_LOGIN_TYPE="instagram")
    counted = Redis(connection_pool=ConnectionPool.from_url(TEST_REDIS_URL, connection_class=Counting))
    ctx = context.Context(settings, counted)
    ticker.run(ctx)  # the accounts enter
    for task in periodic.TASKS:  # nothing falls due in the next minute
        key = contract.due(task)
        soon = redis.zrangebyscore(key, "-inf", time.time() + 60, withscores=True)
        if soon:
            redis.zadd(key, {m: s + 3600 for m, s in soon})
    Counting.sent = 0
    ticker.run(ctx)
    assert Counting.sent <= 20
