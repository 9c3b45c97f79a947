"""The real Flask app with a real Redis: handshake, verify -> store -> 200, and every refusal."""

import io
import time
from pathlib import Path

from redis import Redis

from config import contract
from igrelay.payloads import sign
from tests.conftest import OTHER_SECRET, SECRET, VERIFY_TOKEN, make_settings
from webhook import create_app

SAMPLE = (Path(__file__).parent / "samples" / "meta" / "comments_instagram_login.json").read_bytes()


def post(client, body, signature=None, **kwargs):
    headers = {"Content-Type": "application/json"}
    if signature is not False:
        headers["X-Hub-Signature-256"] = signature or sign(body, SECRET)
    return client.post("/webhook", data=body, headers=headers, **kwargs)


def test_handshake(client):
    ok = client.get(f"/webhook?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444")
    assert ok.status_code == 200 and ok.data == b"1158201444" and ok.mimetype == "text/plain"
    assert client.get("/webhook?hub.mode=subscribe&hub.verify_token=bad&hub.challenge=1").status_code == 403
    assert client.get(f"/webhook?hub.mode=other&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1").status_code == 403
    assert client.get("/webhook?hub.mode=subscribe&hub.challenge=1").status_code == 400


def test_handshakes_are_counted_by_outcome(client, redis):
    client.get(f"/webhook?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1")
    client.get("/webhook?hub.mode=subscribe&hub.verify_token=bad&hub.challenge=1")
    client.get("/webhook?hub.mode=subscribe&hub.challenge=1")
    counted = {k.decode(): int(v) for k, v in redis.hgetall(contract.STATS).items()}
    assert counted["igrelay_handshakes_total|outcome=answered"] == 1
    assert counted["igrelay_handshakes_total|outcome=refused"] == 2
    assert b'igrelay_handshakes_total{outcome="refused"} 2.0' in client.get("/metrics").data


def test_script_challenge_is_plain_text(client):
    answer = client.get(f"/webhook?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=<script>")
    assert answer.mimetype == "text/plain" and answer.headers["X-Content-Type-Options"] == "nosniff"


def test_signed_delivery_is_stored_before_200(client, redis):
    answer = post(client, SAMPLE)
    assert answer.status_code == 200 and answer.is_json
    (entry,) = redis.xrange(contract.INBOX)
    assert entry[1][b"b"] == SAMPLE


def test_either_secret_is_accepted(client, redis):
    assert post(client, SAMPLE, sign(SAMPLE, OTHER_SECRET)).status_code == 200


def test_unsigned_or_wrong_signature_is_401_and_stores_nothing(client, redis):
    assert post(client, SAMPLE, signature=False).status_code == 401
    assert post(client, SAMPLE, sign(SAMPLE, "nope")).status_code == 401
    assert post(client, b"garbage", sign(b"garbage", "nope")).status_code == 401
    assert redis.xlen(contract.INBOX) == 0 and redis.llen("rq:queue:igrelay") == 0


def test_signed_non_envelope_is_400(client, redis):
    for body in (b"not json", b'{"object":"instagram"}', b"[]"):
        assert post(client, body).status_code == 400
    assert redis.xlen(contract.INBOX) == 0


def test_oversized_is_413_with_and_without_length(tmp_path, redis):
    settings = make_settings(tmp_path, IGRELAY_MAX_BODY_BYTES=1000)
    client = create_app(settings, redis=redis).test_client()
    body = b'{"object":"instagram","entry":[' + b" " * 1000 + b"]}"
    assert post(client, body).status_code == 413
    chunked = client.post(
        "/webhook",
        input_stream=io.BytesIO(body),
        environ_overrides={"wsgi.input_terminated": True},
        headers={"Transfer-Encoding": "chunked", "X-Hub-Signature-256": sign(body, SECRET)},
    )
    assert chunked.status_code == 413
    assert redis.xlen(contract.INBOX) == 0


def test_redis_down_is_503_within_two_seconds(tmp_path):
    settings = make_settings(tmp_path, REDIS_URL="redis://127.0.0.1:1/0")
    client = create_app(settings).test_client()
    started = time.monotonic()
    answer = post(client, SAMPLE)
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert time.monotonic() - started < 2
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
    assert b"igrelay_redis_up 0.0" in client.get("/metrics").data


def test_hung_redis_is_503_within_two_seconds_for_every_concurrent_delivery(tmp_path):
    """A Redis that accepts connections and never answers (stopped, or a dead proxy), 8 deliveries at once,
    as gunicorn's 8 threads take them: none waits its turn behind the others' timeouts."""
    import socket
    from concurrent.futures import ThreadPoolExecutor

    with socket.create_server(("127.0.0.1", 0)) as hung:  # the kernel accepts; nobody ever reads
        settings = make_settings(tmp_path, REDIS_URL=f"redis://127.0.0.1:{hung.getsockname()[1]}/0")
        app = create_app(settings)

        def timed(_i: int) -> tuple[int, float]:
            started = time.monotonic()
            return post(app.test_client(), SAMPLE).status_code, time.monotonic() - started

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(timed, range(8)))
    assert {status for status, _took in answers} == {503}
    assert max(took for _status, took in answers) < 2, answers


def test_redis_out_of_memory_is_503_and_the_next_delivery_is_stored(client, redis):
    redis.config_set("maxmemory", "1")
    try:
        assert post(client, SAMPLE).status_code == 503
    finally:
        redis.config_set("maxmemory", "0")
    # The refused XADD left two replies unread: the store must not read them as the next answers.
    assert post(client, SAMPLE).status_code == 200
    assert [e[1][b"b"] for e in redis.xrange(contract.INBOX)] == [SAMPLE]


def test_connection_closed_by_redis_between_deliveries_costs_no_503(client, redis):
    """Redis restarted or a PaaS proxy dropped the idle connection: the next delivery still gets a 200."""
    assert post(client, SAMPLE).status_code == 200
    for _ in range(3):
        # Only this database's clients: the others are other test runs' (pytest-xdist workers included).
        me = redis.client_id()
        theirs = [c["id"] for c in redis.client_list() if c["db"] == str(redis.get_connection_kwargs()["db"])]
        killed = sum(redis.client_kill_filter(_id=cid) for cid in theirs if int(cid) != me)
        assert killed >= 1
        assert post(client, SAMPLE).status_code == 200
    assert redis.xlen(contract.INBOX) == 4


def _commands_for(client, redis, n_changes):
    import json

    changes = [{"field": "comments", "value": {"id": str(i), "media": {"id": "1"}}} for i in range(n_changes)]
    body = json.dumps({"object": "instagram", "entry": [{"id": "1", "time": 1, "changes": changes}]}).encode()
    redis.set(contract.INBOX_PENDING, 1)  # a drain job is on its way: the request does no enqueue
    assert post(client, SAMPLE).status_code == 200  # the store's connection is open (HELLO, SELECT)
    redis.config_resetstat()
    assert post(client, body).status_code == 200
    return {k: v["calls"] for k, v in redis.info("commandstats").items() if "resetstat" not in k}


def test_redis_work_per_delivery_does_not_grow_with_changes(client, redis):
    one, thousand = _commands_for(client, redis, 1), _commands_for(client, redis, 1000)
    assert one == thousand
    assert thousand == {"cmdstat_xadd": 1, "cmdstat_set": 1, "cmdstat_hincrby": 1}


def test_metrics_count_outcomes(client):
    post(client, SAMPLE)
    post(client, SAMPLE, signature=False)
    text = client.get("/metrics").data.decode()
    assert 'igrelay_deliveries_total{outcome="accepted"} 1.0' in text
    assert 'igrelay_deliveries_total{outcome="bad_signature"} 1.0' in text
    assert SECRET not in text and VERIFY_TOKEN not in text


def test_readyz_and_methods(client):
    assert client.get("/readyz").status_code == 200
    assert client.put("/webhook").status_code == 405


def test_app_refuses_to_start_without_secret(tmp_path):
    import pytest

    from config.settings import ConfigError, Settings

    with pytest.raises(ConfigError, match="META_APP_SECRET"):
        create_app(Settings.from_env({"META_VERIFY_TOKEN": "x"}), redis=Redis())


def test_body_shorter_than_its_content_length_is_400(client, redis):
    answer = client.post(
        "/webhook",
        headers={"X-Hub-Signature-256": sign(SAMPLE, SECRET)},
        environ_overrides={"wsgi.input": io.BytesIO(SAMPLE[:100]), "CONTENT_LENGTH": str(len(SAMPLE))},
    )
    assert answer.status_code == 400 and redis.xlen(contract.INBOX) == 0


def test_request_threads_store_on_connections_of_their_own(app, redis):
    """gunicorn's gthread workers serve several requests at once: none waits for another's round trip."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    store = app.extensions["igrelay"]["store"]
    barrier = Barrier(4)

    def put(i: int) -> int:
        barrier.wait(5)  # all four threads are alive together, so none can reuse another's slot
        store.put(b'{"object":"instagram","entry":[]}')
        return id(store._connection())

    with ThreadPoolExecutor(4) as pool:
        connections = set(pool.map(put, range(4)))
    assert len(connections) == 4
    assert redis.xlen(contract.INBOX) == 4


def test_unexpected_error_is_500_logged_without_the_body_and_the_next_delivery_is_stored(client, redis, caplog):
    store = client.application.extensions["igrelay"]["store"]
    real_put = store.put
    failures = iter([RuntimeError("boom")])

    def put_failing_once(body: bytes) -> str:
        for exc in failures:
            raise exc
        return real_put(body)

    store.put = put_failing_once
    failed = post(client, SAMPLE)
    assert failed.status_code == 500 and failed.data == b"internal error\n"
    (logged,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "unexpected error" in logged.getMessage() and SAMPLE.decode() not in caplog.text
    assert post(client, SAMPLE).status_code == 200 and redis.xlen(contract.INBOX) == 1
