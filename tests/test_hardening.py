"""Hardening: /metrics behind a bearer token with no account ids, TLS to Redis checked against a CA,
secrets scrubbed from every part of a log line, ``igrelay check`` silent about REDIS_URL's query."""

from __future__ import annotations

import datetime
import io
import json
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from config import contract, stats
from config.logs import JsonFormatter, RedactingFilter, TextFormatter, redact
from config.settings import Settings
from tests.conftest import make_settings
from tests.support.procs import free_port
from webhook import create_app

METRICS_TOKEN = "metrics-token-0123456789abcdef"


def test_metrics_want_the_bearer_token_when_one_is_set(tmp_path, redis) -> None:  # type: ignore[no-untyped-def]
    client = create_app(make_settings(tmp_path, IGRELAY_METRICS_TOKEN=METRICS_TOKEN), redis=redis).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": METRICS_TOKEN}).status_code == 401
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert answer.status_code == 200 and b"igrelay_redis_up 1.0" in answer.data
    open_client = create_app(make_settings(tmp_path), redis=redis).test_client()
    assert open_client.get("/metrics").status_code == 200  # unset: open, for a private network


def test_metrics_name_no_account(tmp_path, redis, graph_settings, graph_sandbox) -> None:  # type: ignore[no-untyped-def]
    from workers import media_state, polling

    account = graph_sandbox.accounts[0]
    graph_sandbox.expire_token(account)
    polling.poll_account(redis, graph_settings, account)  # a Graph call refused: counted, account flagged
    assert media_state.needs_reauth(redis, graph_settings, account)
    # a counter kept per account by an older igrelay is summed, not shown
    redis.hincrby(contract.STATS, stats.field("igrelay_graph_calls_total", outcome="auth", account="1784199"), 2)
    text = create_app(make_settings(tmp_path), redis=redis).test_client().get("/metrics").data.decode()
    assert "igrelay_account_needs_reauth_total 1.0" in text
    assert 'igrelay_graph_calls_total{outcome="auth"} 3.0' in text
    assert "account" not in text.replace("igrelay_account_", "") and account not in text


# --- TLS to Redis ------------------------------------------------------------------------------------


def _cert(subject: str, issuer_key, issuer_name, key, ca: bool):  # type: ignore[no-untyped-def]
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        import ipaddress

        alt = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(alt, critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), name


def _pem(path: Path, cert=None, key=None) -> str:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return str(path)


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """A redis-server speaking TLS only, with a certificate from a CA of its own: (url, ca, another ca)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server")
    ca_key, other_key, key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca, ca_name = _cert("igrelay test CA", ca_key, None, ca_key, True)
    other, _ = _cert("another CA", other_key, None, other_key, True)
    server, _ = _cert("127.0.0.1", ca_key, ca_name, key, False)
    port = free_port()
    argv = ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += [
        "--tls-cert-file",
        _pem(tmp_path / "server.pem", server),
        "--tls-key-file",
        _pem(tmp_path / "k.pem", None, key),
    ]
    argv += ["--tls-ca-cert-file", _pem(tmp_path / "ca.pem", ca), "--tls-auth-clients", "no", "--dir", str(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        yield f"rediss://127.0.0.1:{port}/0", str(tmp_path / "ca.pem"), _pem(tmp_path / "other.pem", other)
    finally:
        proc.terminate()
        proc.wait(10)


def _ping(settings: Settings) -> bool:
    client = Redis.from_url(settings.redis_url, socket_connect_timeout=2, **settings.redis_options())
    try:
        for _ in range(20):
            try:
                return bool(client.ping())
            except RedisConnectionError as exc:
                if "certificate" in str(exc).lower() or "ssl" in str(exc).lower():
                    return False
                time.sleep(0.1)
        return False
    finally:
        client.close()


def test_rediss_is_checked_against_redis_tls_ca(tls_redis) -> None:  # type: ignore[no-untyped-def]
    url, ca, other = tls_redis
    assert _ping(Settings.from_env({"REDIS_URL": url, "REDIS_TLS_CA": ca}))
    assert not _ping(Settings.from_env({"REDIS_URL": url, "REDIS_TLS_CA": other}))  # someone else's certificate
    assert not _ping(Settings.from_env({"REDIS_URL": url}))  # the system's CAs don't know it
    assert _ping(Settings.from_env({"REDIS_URL": url, "REDIS_TLS_VERIFY": "false"}))  # Heroku's explicit choice


# --- logs ----------------------------------------------------------------------------------------------

SECRETS_IN_TEXT = [
    ("postgresql://igrelay:p%ss@w0rd@db.example:5432/x failed", "w0rd"),
    ("redis://:hunter2hunter2@redis.example:6379/0", "hunter2hunter2"),
    ("rediss://default:a:b/c@h:6380", "a:b/c"),
    ("connecting to redis://h:6379/0?password=s3cr3t-value&db=1", "s3cr3t-value"),
    (
        "GET https://graph.instagram.com/refresh_access_token?grant_type=ig_refresh_token&access_token=IGQVJtok",
        "IGQVJtok",
    ),
    ("https://sink.example/hook?api_key=k3y-value-1", "k3y-value-1"),
    ("https://sink.example/x;sig=abcdef123", "abcdef123"),
]


@pytest.mark.parametrize(("text", "secret"), SECRETS_IN_TEXT)
def test_redact_finds_passwords_and_secret_queries(text: str, secret: str) -> None:
    assert secret not in redact(text)


def _line(formatter: logging.Formatter, **extra: object) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger("test.hardening")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("sink failed: %s", "postgresql://u:pw-in-message@h/db", extra=extra)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return out.getvalue()


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_extra_fields_are_redacted_in_both_formats(formatter: logging.Formatter) -> None:
    line = _line(
        formatter,
        url="redis://:extra-password@h:6379/0?password=q-secret",
        error="HTTPError for https://x/y?access_token=EXTRA_TOKEN",
        details={"dsn": "postgresql://u:nested-pw@h/db"},
        count=3,
    )
    for secret in ("pw-in-message", "extra-password", "q-secret", "EXTRA_TOKEN", "nested-pw"):
        assert secret not in line
    if isinstance(formatter, JsonFormatter):
        assert json.loads(line)["count"] == 3


# --- igrelay check ------------------------------------------------------------------------------------


def test_check_never_prints_redis_urls_query_and_says_why_tokens_are_not_kept(tmp_path, redis, capsys) -> None:  # type: ignore[no-untyped-def]
    from igrelay.commands import check

    url = redis.connection_pool.connection_kwargs
    redis_url = f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}?health_check_interval=7&password=s3cr3t-q"
    settings = make_settings(tmp_path, REDIS_URL=redis_url, IGRELAY_SECRET_KEY="")
    rows = check.config_rows(settings)
    found, client = check.redis_rows(settings)
    if client is not None:
        client.close()
    check.render(rows + found)
    out = capsys.readouterr().out
    assert "s3cr3t-q" not in out and "?" not in out.replace("?)", "")
    assert "IGRELAY_SECRET_KEY" in out
