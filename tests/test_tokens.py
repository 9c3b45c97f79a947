"""Tokens at rest: sealed with IGRELAY_SECRET_KEY, bound to their account, rotated, never in clear in Redis."""

from __future__ import annotations

import pytest

from config import contract, crypto
from tests.conftest import sandbox_settings
from workers import polling
from workers.graph_client import GraphClient, fingerprint

KEY_A = "first-secret-key-aaaaaaaaaaaaaaaaaaaaaaaa"
KEY_B = "second-secret-key-bbbbbbbbbbbbbbbbbbbbbbb"


def dump(redis, key: bytes) -> bytes:  # type: ignore[no-untyped-def]
    return redis.dump(key) or b""


def test_derived_keys_differ_per_purpose_and_secret() -> None:
    tokens, session = crypto.derive(KEY_A, crypto.TOKENS), crypto.derive(KEY_A, crypto.CONSOLE_SESSION)
    assert len(tokens) == 32 and tokens != session and tokens == crypto.derive([KEY_A, KEY_B], crypto.TOKENS)
    assert crypto.derive_all([KEY_B, KEY_A], crypto.TOKENS)[1] == tokens
    with pytest.raises(crypto.KeyMissing):
        crypto.derive([], crypto.TOKENS)


def test_no_token_in_clear_anywhere_in_redis_after_a_refresh(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    for account in graph_sandbox.accounts:
        assert polling.refresh_token(redis, graph_settings, account)
    tokens = {t.value.encode() for t in graph_sandbox.data.tokens.values()}
    assert len(tokens) >= 2 * len(graph_sandbox.accounts)  # configured and refreshed
    keys = list(redis.scan_iter("*"))
    assert any(k.startswith(b"igrelay:token:") for k in keys)
    for key in keys:
        blob = dump(redis, key) + repr(redis.hgetall(key) if redis.type(key) == b"hash" else b"").encode()
        assert not any(t in blob for t in tokens), key


def test_another_accounts_ciphertext_is_refused(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    a, b = graph_sandbox.accounts[:2]
    for account in (a, b):
        assert polling.refresh_token(redis, graph_settings, account)
    client = GraphClient(None, graph_settings, redis)  # type: ignore[arg-type]
    mine_b = client.token(b)
    assert mine_b not in (graph_settings.token_for(b), None)
    # A writer puts a's valid ciphertext (and a's fingerprint, to be thorough) under b.
    sealed_a = redis.hget(contract.token(a), "sealed")
    redis.hset(contract.token(b), "sealed", sealed_a)
    assert client.token(b) == graph_settings.token_for(b)  # refused: b falls back to its configured token


def test_rotation_decrypts_with_the_old_key_and_reseals_with_the_new(tmp_path, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    old = sandbox_settings(tmp_path, graph_sandbox, IGRELAY_SECRET_KEY=KEY_A)
    assert polling.refresh_token(redis, old, account)
    token = GraphClient(None, old, redis).token(account)  # type: ignore[arg-type]
    before = redis.hget(contract.token(account), "sealed")
    rotated = sandbox_settings(tmp_path, graph_sandbox, IGRELAY_SECRET_KEY=f"{KEY_B},{KEY_A}")
    assert GraphClient(None, rotated, redis).token(account) == token  # type: ignore[arg-type]
    after = redis.hget(contract.token(account), "sealed")
    assert after != before
    new_only = sandbox_settings(tmp_path, graph_sandbox, IGRELAY_SECRET_KEY=KEY_B)
    assert GraphClient(None, new_only, redis).token(account) == token  # type: ignore[arg-type]


def test_a_token_stored_in_clear_is_sealed_on_first_read(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    refreshed = graph_sandbox.issue_token(account, age=0)
    source = fingerprint(graph_settings.token_for(account))
    redis.hset(contract.token(account), mapping={"token": refreshed, "source": source, "issued_at": 1})
    assert GraphClient(None, graph_settings, redis).token(account) == refreshed  # type: ignore[arg-type]
    stored = redis.hgetall(contract.token(account))
    assert b"token" not in stored and refreshed.encode() not in stored[b"sealed"]
    assert crypto.TokenBox(graph_settings).open(account, stored[b"sealed"]) == (refreshed, False)


def test_a_stored_token_is_not_used_without_the_key(tmp_path, graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    assert polling.refresh_token(redis, graph_settings, account)
    keyless = sandbox_settings(tmp_path, graph_sandbox, IGRELAY_SECRET_KEY="")
    assert GraphClient(None, keyless, redis).token(account) == keyless.token_for(account)  # type: ignore[arg-type]
