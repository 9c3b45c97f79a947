"""config.redis_conn: REDIS_URL forms, clients per purpose, the worker's patience with an outage."""

from __future__ import annotations

import logging

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.sentinel import SentinelConnectionPool

from config import redis_conn
from config.redis_conn import Patient, SentinelURL, parse_sentinel_url
from config.settings import ConfigError, Settings, redact_url
from webhook.store import DeliveryStore, StoreUnavailable

SENTINEL = "redis+sentinel://127.0.0.1:26379,sentinel-2:26380/mymaster/3"


def test_sentinel_url_names_sentinels_master_and_db() -> None:
    assert parse_sentinel_url(SENTINEL) == SentinelURL((("127.0.0.1", 26379), ("sentinel-2", 26380)), "mymaster", 3)
    with_auth = parse_sentinel_url("redis+sentinel://u:p%40ss@h:1/m")
    assert (with_auth.username, with_auth.password, with_auth.db) == ("u", "p@ss", 0)


@pytest.mark.parametrize(
    "raw",
    ["redis+sentinel:///m/0", "redis+sentinel://h/m/0", "redis+sentinel://h:1/", "redis+sentinel://h:1/m/x"],
)
def test_a_bad_sentinel_url_stops_the_process_naming_redis_url(raw: str) -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Settings.from_env({"REDIS_URL": raw})


def test_sentinel_url_is_printed_without_its_password() -> None:
    shown = redact_url("redis+sentinel://:hunter2@h1:26379,h2:26379/mymaster/0")
    assert shown == "redis+sentinel://h1:26379,h2:26379/mymaster/0"


def test_clients_per_purpose() -> None:
    plain = Settings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0"})
    web = redis_conn.connect(plain, "web").connection_pool.connection_kwargs
    assert (web["socket_timeout"], web["retry"].get_retries()) == (redis_conn.WEB_TIMEOUT, 0)
    assert isinstance(redis_conn.connect(plain, "worker").connection_pool.connection_kwargs["retry"], Patient)
    assert redis_conn.replicas_to_wait_for(plain) == 0
    behind = Settings.from_env({"REDIS_URL": SENTINEL})
    pool = redis_conn.connect(behind, "worker").connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "mymaster"
    assert pool.connection_class is redis_conn.PrimaryConnection and pool.connection_kwargs["db"] == 3
    assert redis_conn.replicas_to_wait_for(behind) == 1


@pytest.fixture
def outage(monkeypatch: pytest.MonkeyPatch) -> redis_conn._Outage:
    state = redis_conn._Outage()
    monkeypatch.setattr(redis_conn, "OUTAGE", state)
    monkeypatch.setattr(redis_conn.CappedJitter, "compute", lambda self, failures: 0.0)
    return state


def flaky(failures: int) -> tuple[list[int], object]:
    calls = [0]

    def do() -> str:
        calls[0] += 1
        if calls[0] <= failures:
            raise RedisConnectionError("refused")
        return "ok"

    return calls, do


def test_patient_retries_until_redis_answers_logging_once_each_way(outage, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, "igrelay.redis")
    calls, do = flaky(50)
    assert Patient("worker").call_with_retry(do, lambda error: None) == "ok"
    assert calls[0] == 51
    assert [r.redis_outage for r in caplog.records] == ["start", "end"]  # type: ignore[attr-defined]
    _calls, once = flaky(1)  # one dropped connection, reconnected at once: not an outage
    Patient("worker").call_with_retry(once, lambda error: None)
    assert len(caplog.records) == 2 and redis_conn.outages() == 1


def test_a_stopping_process_stops_waiting(outage) -> None:  # type: ignore[no-untyped-def]
    redis_conn.stop_waiting()
    _calls, do = flaky(5)
    with pytest.raises(RedisConnectionError):
        Patient("worker").call_with_retry(do, lambda error: None)


def test_backoff_is_capped_and_jittered() -> None:
    backoff = redis_conn.CappedJitter()
    waits = [backoff.compute(n) for n in (1, 5, 50, 10_000)]
    assert all(0 < w <= redis_conn.BACKOFF_CAP for w in waits)
    assert waits[-1] >= redis_conn.BACKOFF_CAP / 2


def test_behind_sentinel_a_delivery_no_replica_acknowledged_is_refused(redis: Redis) -> None:
    """WAIT 1 on a Redis without replicas answers 0 after its timeout: 503, so Meta sends it again."""
    with pytest.raises(StoreUnavailable, match="replica"):
        DeliveryStore(redis, replicas=1).put(b'{"entry": []}')
    assert DeliveryStore(redis).put(b'{"entry": []}')
