"""Fault 8: canary secrets through every error path; none may surface in logs, Redis, records or /metrics."""

from __future__ import annotations

import base64
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import cycle

import requests
from rq import Queue

from config import contract
from config.rq import QUEUE, SERIALIZER, presets
from igrelay import payloads
from igrelay.sandbox import Sandbox
from igrelay.sandbox.data import Token
from tests.faults.conftest import base_env, redis_values, signature
from tests.support.procs import free_port

TAG = secrets.token_hex(6)
TOKEN = f"IGAACANARYTOKEN{TAG}"
APP_SECRET = f"CANARYAPPSECRET{TAG}"
VERIFY = f"CANARYVERIFY{TAG}"
SINK_PATH = f"CANARYSINKPATH{TAG}"
SINK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()  # Standard Webhooks: base64
CANARIES = [TOKEN, APP_SECRET, VERIFY, SINK_PATH, SINK_SECRET]


class Hostile:
    """A Graph API stand-in on 127.0.0.1 whose answers echo the Authorization header back: non-JSON 200,
    401/400/500 JSON errors quoting the token, HTML 502, a JSON body that is not an object."""

    ANSWERS = [
        (200, "text/html", "<html>not json {auth}</html>"),
        (401, "application/json", '{{"error":{{"message":"Invalid token {auth}","code":190}}}}'),
        (400, "application/json", '{{"error":{{"message":"Bad request for {auth}","code":100}}}}'),
        (500, "application/json", '{{"error":{{"message":"Oops {auth}","code":1,"is_transient":true}}}}'),
        (502, "text/html", "<h1>Bad gateway</h1> {auth}"),
        (200, "application/json", '["{auth}"]'),
    ]

    def __init__(self) -> None:
        answers, lock, stub = cycle(self.ANSWERS), threading.Lock(), self
        self.tokens_in_url = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                with lock:
                    status, kind, template = next(answers)
                    stub.tokens_in_url += TOKEN in self.path
                body = template.format(auth=self.headers.get("Authorization", "")).encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_canary_secrets_appear_nowhere(procs, redis, tmp_path):
    """Canary token, app secret, verify token, sink URL and sink secret, through Graph timeouts, 5xx, throttling,
    expired token (sandbox), hostile non-JSON/401/400/500/502 answers echoing the token, connection refused,
    bad signatures and handshakes, and a sink that refuses connections: 0 occurrences in web and worker logs,
    in any Redis key or value (RQ's compressed job data, exc_info and results decoded), in the SQLite sink's
    files and in /metrics; 0 tokens in a URL seen by the Graph stand-ins."""
    sandbox, hostile = Sandbox().start(), Hostile()
    try:
        account = sandbox.accounts[0]
        sandbox.data.tokens[TOKEN] = Token(TOKEN, account)
        sandbox.timeout_delay = 1.5
        for kind, n in (("timeout", 2), ("5xx", 2), ("unknown", 2), ("throttle", 1), ("expired_token", 2)):
            sandbox.fail_next(n, kind)
        config = tmp_path / "igrelay.toml"
        config.write_text("[graph]\nread_timeout = 1\n")
        db = tmp_path / "records.sqlite3"
        env = base_env(
            tmp_path,
            META_APP_SECRET=APP_SECRET,
            META_VERIFY_TOKEN=VERIFY,
            IG_ACCESS_TOKENS=f"{account}={TOKEN}",
            IGRELAY_SINKS=f"sqlite:///{db},http://127.0.0.1:{free_port()}/hooks/{SINK_PATH}",
            IGRELAY_SINK_ALLOW_PRIVATE="true",
            IGRELAY_SINK_SECRET=SINK_SECRET,
            IGRELAY_CONFIG=str(config),
            LOG_LEVEL="DEBUG",
        )
        web, url = procs.web(env)
        media = [m.id for m in sandbox.data.media.values() if m.account_id == account and not m.parent_id]
        _web_requests(url, account, media)

        for graph_url in (sandbox.url, hostile.url, f"http://127.0.0.1:{free_port()}"):
            _enqueue_graph_jobs(redis, account, media)
            worker = procs.run_burst({**env, "GRAPH_API_URL": graph_url})
            assert worker.popen.returncode == 0, worker.text()[-2000:]
        metrics = requests.get(url + "/metrics", timeout=5).text
        assert "igrelay_" in metrics
        failures = sum(1 for _k, _v in redis_values(redis) if b"Traceback" in _v)
        assert failures >= 3  # at least the refused phase's three jobs failed for good, their exceptions stored
    finally:
        sandbox.stop()
        hostile.close()
    logs = {proc.log.name: proc.text() for proc in procs.all}
    assert any("delivery refused" in text for text in logs.values())
    files = {p.name: p.read_bytes() for p in tmp_path.glob("records.sqlite3*")}
    assert files
    for canary in CANARIES:
        found = [name for name, text in logs.items() if canary in text]
        found += [key.decode() for key, blob in redis_values(redis) if canary.encode() in blob]
        found += [name for name, blob in files.items() if canary.encode() in blob]
        found += ["/metrics"] if canary in metrics else []
        assert not found, f"canary {canary[:12]}... found in {sorted(set(found))}"
    # Meta's refresh endpoint is the one that takes the token in its query (its only documented form)
    in_query = {r["path"] for r in sandbox.requests_log if "access_token" in r["query"]}
    assert in_query <= {"/refresh_access_token"} and hostile.tokens_in_url == 0


def _web_requests(url: str, account: str, media: list[str]) -> None:
    """Signed deliveries, bad signatures (one quoting the secret), handshakes right and wrong."""
    with requests.Session() as s:
        for media_id in media:
            body = payloads.encode(payloads.delivery("comments", account, media_id, 2))
            assert s.post(url + "/webhook", data=body, headers=signature(body, APP_SECRET), timeout=5).ok
        body = payloads.encode(payloads.delivery("comments", account, media[0], 1))
        bad = [
            signature(body, "wrong"),
            {"X-Hub-Signature-256": f"sha256={APP_SECRET}"},
            {"X-Hub-Signature-256": f"sha1={APP_SECRET}"},
            {"X-Hub-Signature-256": APP_SECRET * 50},
        ]
        for headers in bad:
            assert s.post(url + "/webhook", data=body, headers=headers, timeout=5).status_code == 401
        for token in (VERIFY, VERIFY + "x", APP_SECRET):
            params = {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "12345"}
            s.get(url + "/webhook", params=params, timeout=5)
        s.post(url + "/webhook", data=b"{not json", headers=signature(b"{not json", APP_SECRET), timeout=5)


def _enqueue_graph_jobs(redis, account: str, media: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Every Graph-calling job once: a media fetch, and as their last attempt (RQ stores the exception text
    of a job only when it fails for good) account insights, new-media polling and a token refresh."""
    # A configured token of unknown age: the refresh really calls Graph.
    redis.delete(*[contract.media(account, m) for m in media])
    fetch_q = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    default_q = Queue(QUEUE, connection=redis, serializer=SERIALIZER)
    fetch_q.enqueue("workers.jobs.fetch_batch", args=([[account, m, "comments"] for m in media],), **presets()["fetch"])
    last = {**presets()["periodic"], "retry": None}
    fetch_q.enqueue("workers.jobs.poll_account", args=(account,), **last)
    default_q.enqueue("workers.jobs.account_insights", args=(account,), **last)
    default_q.enqueue("workers.jobs.refresh_token", args=(account,), **last)
