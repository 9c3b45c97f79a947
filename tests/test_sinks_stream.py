"""The Redis stream sink against a real Redis: XADD once per record id."""

from __future__ import annotations

import json

import pytest
from conftest import TEST_REDIS_URL, make_settings

from config.settings import ConfigError
from workers import records as R
from workers.sinks import SinkError, load
from workers.sinks.stream import split_url


def rec(i: int) -> dict:
    return R.account_insights("1", f"2026-11-{i:02d}", {"reach": i}, {}, "schedule")


def test_split_url() -> None:
    assert split_url("redis://h:1/2?stream=s&db=2") == ("redis://h:1/2?db=2", "s")


def test_xadd_each_record_once(tmp_path, redis) -> None:
    sink = load(f"{TEST_REDIS_URL}?stream=ig:records", {}, make_settings(tmp_path))
    batch = [rec(i) for i in range(1, 11)]
    try:
        sink.send(batch)
        sink.send(batch[:5] + [rec(11)])
    finally:
        sink.close()
    entries = redis.xrange("ig:records")
    assert len(entries) == 11
    first = entries[0][1]
    assert first[b"id"].decode() == batch[0]["id"] and json.loads(first[b"record"])["metrics"] == {"reach": 1}
    assert 0 < redis.ttl("igrelay:stream-ids:ig:records") <= 15 * 86400


def test_wrong_type_and_missing_stream(tmp_path, redis) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(ConfigError):
        load(TEST_REDIS_URL, {}, settings)
    redis.set("notastream", "x")
    sink = load(f"{TEST_REDIS_URL}?stream=notastream", {}, settings)
    with pytest.raises(SinkError):
        sink.send([rec(1)])
    sink.close()
    assert not redis.exists("igrelay:stream-ids:notastream")


def test_unreachable_redis_is_retryable_without_password(tmp_path) -> None:
    sink = load("redis://:pw-secret-123@127.0.0.1:1/0?stream=s", {}, make_settings(tmp_path))
    with pytest.raises(SinkError) as info:
        sink.send([rec(1)])
    sink.close()
    assert "pw-secret" not in str(info.value)
