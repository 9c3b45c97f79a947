"""The HTTP sink against a local receiver that verifies Standard Webhooks signatures independently."""

from __future__ import annotations

import base64
import json
import time

import pytest
from conftest import make_settings
from standardwebhooks.webhooks import Webhook

from workers import records as R
from workers.sinks import PermanentSinkError, SinkError, SinkGone, load
from workers.sinks.http import retry_after, signature, signing_keys

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()


def rec(i: int) -> dict:
    return R.account_insights("17841", f"2026-11-{i:02d}", {"reach": i}, {}, "schedule")


def http_sink(tmp_path, url: str, secret: str = SECRET, **options):  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path, IGRELAY_SINK_SECRET=secret, IGRELAY_SINK_ALLOW_PRIVATE="1")
    return load(url, options, settings)


def test_signed_headers_verify_with_the_reference_library(tmp_path, receiver) -> None:
    sink = http_sink(tmp_path, receiver.url + "/hook", secret=f"{SECRET} {OLD_SECRET}")
    records = [rec(i) for i in range(1, 6)]
    try:
        sink.send(records)
    finally:
        sink.close()
    assert len(receiver.requests) == 5
    for request in receiver.requests:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        for secret in (SECRET, OLD_SECRET):  # rotation: one signature per secret
            payload = Webhook(secret).verify(request["body"], headers)
            assert payload["id"] == headers["webhook-id"]
        assert headers["content-type"] == "application/json"
    assert sorted(json.loads(r["body"])["id"] for r in receiver.requests) == sorted(r["id"] for r in records)


def test_webhook_id_is_stable_across_retries_and_timestamp_is_fresh(tmp_path, receiver, monkeypatch) -> None:
    receiver.script = [(500, {})]
    sink = http_sink(tmp_path, receiver.url)
    record = rec(1)
    with pytest.raises(SinkError) as info:
        sink.send([record])
    assert info.value.done == () and not isinstance(info.value, PermanentSinkError)
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)
    sink.send([record])
    sink.close()
    first, second = (r["headers"] for r in receiver.requests)
    assert first["webhook-id"] == second["webhook-id"] == record["id"]
    assert first["webhook-timestamp"] != second["webhook-timestamp"] == "2000000000"


def test_partial_failure_reports_what_got_through(tmp_path, receiver) -> None:
    receiver.script = [(200, {}), (503, {"Retry-After": "7"}), (200, {})]
    sink = http_sink(tmp_path, receiver.url, concurrency=1)
    records = [rec(i) for i in range(1, 4)]
    with pytest.raises(SinkError) as info:
        sink.send(records)
    sink.close()
    assert set(info.value.done) == {records[0]["id"], records[2]["id"]}
    assert info.value.retry_after == 7


def test_410_is_gone_and_3xx_is_not_followed(tmp_path, receiver) -> None:
    receiver.script = [(410, {})]
    sink = http_sink(tmp_path, receiver.url)
    with pytest.raises(SinkGone):
        sink.send([rec(1)])
    receiver.script = [(302, {"Location": "http://169.254.169.254/latest/meta-data"})]
    with pytest.raises(SinkError) as info:
        sink.send([rec(1)])
    sink.close()
    assert "302" in str(info.value) and len(receiver.requests) == 2  # nothing followed the redirect


def test_read_timeout_is_a_retryable_failure(tmp_path, receiver) -> None:
    receiver.delay = 1.0
    sink = http_sink(tmp_path, receiver.url, read_timeout=0.2)
    with pytest.raises(SinkError) as info:
        sink.send([rec(1)])
    sink.close()
    assert "ReadTimeout" in str(info.value) and receiver.url not in str(info.value)


def test_connection_refused_never_shows_the_url(tmp_path) -> None:
    sink = http_sink(tmp_path, "http://127.0.0.1:9/secret-path-token-123456")
    with pytest.raises(SinkError) as info:
        sink.send([rec(1)])
    sink.close()
    assert "secret-path-token" not in str(info.value) and info.value.__cause__ is None


def test_requests_within_a_batch_run_concurrently(tmp_path, receiver) -> None:
    receiver.delay = 0.1
    sink = http_sink(tmp_path, receiver.url, concurrency=16)
    start = time.monotonic()
    sink.send([rec(i) for i in range(1, 33)])
    sink.close()
    assert len(receiver.ok_bodies()) == 32 and time.monotonic() - start < 1.5


def test_retry_after_parsing() -> None:
    assert retry_after("30") == 30 and retry_after(None) is None and retry_after("soon") is None
    assert retry_after("0") == 1 and retry_after("999999") == 86400
    assert 0 < retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))) <= 61


def test_signature_matches_the_spec_example() -> None:
    # Example from the Standard Webhooks spec / reference libraries.
    key = signing_keys("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected


def test_bad_secret_is_a_config_error(tmp_path) -> None:
    from config.settings import ConfigError

    with pytest.raises(ConfigError):
        http_sink(tmp_path, "http://127.0.0.1:1/", secret="whsec_not base64!!")


def test_a_name_that_does_not_resolve_is_retried(tmp_path) -> None:
    for private in ("1", "0"):  # through the SSRF guard and without it
        settings = make_settings(tmp_path, IGRELAY_SINK_SECRET=SECRET, IGRELAY_SINK_ALLOW_PRIVATE=private)
        sink = load("https://receiver.invalid/hook", {}, settings)
        try:
            with pytest.raises(SinkError, match="does not resolve") as info:
                sink.send([rec(1)])
        finally:
            sink.close()
        assert not isinstance(info.value, PermanentSinkError) and info.value.done == ()
