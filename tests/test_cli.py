"""The ``igrelay`` command as a user runs it: subprocesses, the tests' Redis, the sandbox Graph API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from igrelay.commands.fetch import fetch_now
from tests.conftest import SECRET, TEST_REDIS_URL, VERIFY_TOKEN, make_settings, run_worker
from tests.support.env import SECRET_KEY

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [
    [],
    ["web"],
    ["worker"],
    ["dev"],
    ["simulate"],
    ["fetch"],
    ["subscribe"],
    ["check"],
    ["failed"],
    ["failed", "list"],
    ["failed", "replay"],
]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment without any igrelay setting of the caller's, plus ``extra``."""
    own = ("META_", "IGRELAY_", "IG_", "REDIS_URL", "GRAPH_API", "PORT", "LOG_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    env.update(REDIS_URL=TEST_REDIS_URL, META_APP_SECRET=SECRET, META_VERIFY_TOKEN=VERIFY_TOKEN, LOG_FORMAT="json")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env.update(extra)
    return env


def igrelay(*args: str, cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``igrelay ARGS`` and capture its output."""
    argv = [sys.executable, "-m", "igrelay", *args]
    return subprocess.run(argv, cwd=cwd, env=cli_env(**env), capture_output=True, text=True, timeout=timeout)


def sandbox_env(sandbox, tmp_path: Path, **extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Env pointing at ``sandbox`` with each demo account's token and a SQLite sink in ``tmp_path``."""
    tokens = ",".join(f"{a}={sandbox.token_for(a)}" for a in sandbox.accounts)
    sinks = f"sqlite:///{tmp_path}/records.sqlite3"
    env = {
        "GRAPH_API_URL": sandbox.url,
        "IG_ACCESS_TOKENS": tokens,
        "IGRELAY_SINKS": sinks,
        "IGRELAY_SECRET_KEY": SECRET_KEY,
    }
    return {**env, **extra}


def test_every_command_explains_itself(tmp_path: Path) -> None:
    from igrelay.cli import build_parser

    parser = build_parser()
    for words in COMMANDS:
        with pytest.raises(SystemExit) as stop:
            parser.parse_args([*words, "--help"])
        assert stop.value.code == 0
    done = igrelay("check", "--help", cwd=tmp_path)
    assert done.returncode == 0 and "Graph API" in done.stdout and "exit 1" in done.stdout


def test_a_bad_value_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    done = igrelay("check", cwd=tmp_path, IGRELAY_DEBOUNCE_SECONDS="soon")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "IGRELAY_DEBOUNCE_SECONDS" in done.stderr


def test_check_is_quiet_when_all_is_well(tmp_path: Path, redis, graph_sandbox) -> None:  # type: ignore[no-untyped-def]
    done = igrelay("check", cwd=tmp_path, **sandbox_env(graph_sandbox, tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PROBLEM" not in done.stdout and done.stdout.count("OK ") >= 6
    assert "@sandbox_account_1" in done.stdout and done.stdout.rstrip().endswith("0 problems, 1 warning")


def test_check_reports_a_bad_token_and_an_unreachable_sink(tmp_path: Path, redis, graph_sandbox) -> None:  # type: ignore[no-untyped-def]
    good, other = graph_sandbox.accounts
    env = sandbox_env(graph_sandbox, tmp_path)
    env["IG_ACCESS_TOKENS"] = f"{good}={graph_sandbox.token_for(good)},{other}=IGAAnot-a-real-token"
    env["IGRELAY_SINKS"] += ",postgresql://igrelay:hunter2@127.0.0.1:1/x"
    done = igrelay("check", cwd=tmp_path, **env)
    assert done.returncode == 1
    problems = [line for line in done.stdout.splitlines() if line.startswith("PROBLEM")]
    assert len(problems) == 2
    assert "token" in problems[0] and other in problems[0] and "code 190" in problems[0]
    assert "sink" in problems[1] and "postgresql://igrelay:***@127.0.0.1:1/x" in problems[1]
    assert "reconnect the account" in done.stdout and "not-a-real-token" not in done.stdout + done.stderr
    assert "hunter2" not in done.stdout + done.stderr and graph_sandbox.tokens_seen_in_url == 0


def test_fetch_prints_the_record_as_json_when_piped(tmp_path: Path, redis, graph_sandbox) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    media = graph_sandbox.add_media(account, "REELS", "VIDEO")
    done = igrelay("fetch", media, cwd=tmp_path, **sandbox_env(graph_sandbox, tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1
    record = json.loads(done.stdout)
    assert record["kind"] == "media_insights" and record["media_id"] == media and record["trigger"] == "manual"
    assert record["account_id"] == account and record["metrics"]


def test_fetch_says_in_one_line_when_the_token_expired(tmp_path: Path, redis, graph_sandbox) -> None:  # type: ignore[no-untyped-def]
    account = graph_sandbox.accounts[0]
    media = graph_sandbox.add_media(account)
    graph_sandbox.expire_token(account)
    done = igrelay("fetch", media, "--account", account, cwd=tmp_path, **sandbox_env(graph_sandbox, tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        f"igrelay fetch: token for account {account} expired or invalid (code 190/463): "
        "reconnect the account and set its new token"
    )


def test_fetch_now_tries_the_configured_tokens(graph_settings, graph_sandbox, redis) -> None:  # type: ignore[no-untyped-def]
    second = graph_sandbox.accounts[1]
    media_id = next(
        m.id for m in graph_sandbox.data.media.values() if m.account_id == second and m.media_product_type == "REELS"
    )
    record = fetch_now(graph_settings, media_id, redis=redis)
    assert record["account_id"] == second and record["trigger"] == "manual" and record["metrics"]["views"] > 0
    assert fetch_now(graph_settings, media_id, account=second)["media_id"] == media_id


def test_subscribe_subscribes_every_account(tmp_path: Path, redis, graph_sandbox) -> None:  # type: ignore[no-untyped-def]
    env = sandbox_env(graph_sandbox, tmp_path)
    done = igrelay("subscribe", "--fields", "comments,messages", cwd=tmp_path, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" OK") == 2 and "2 of 2 accounts subscribed" in done.stdout
    for account in graph_sandbox.accounts:
        assert graph_sandbox.data.accounts[account].subscribed_fields == ["comments", "messages"]


def test_subscribe_with_facebook_login_asks_for_the_page(tmp_path: Path, redis) -> None:  # type: ignore[no-untyped-def]
    env = {"GRAPH_API_URL": "https://graph.facebook.com", "IG_ACCESS_TOKENS": "17841400000000009=EAAtoken"}
    done = igrelay("subscribe", cwd=tmp_path, **env)
    assert done.returncode == 1 and "page_id and page_token in [accounts.17841400000000009]" in done.stdout


def test_failed_replay_redelivers_a_dead_letter(tmp_path: Path, redis, receiver) -> None:  # type: ignore[no-untyped-def]
    from workers import delivery, records

    env = {"IGRELAY_SINKS": receiver.url + "/hook", "IGRELAY_SINK_ALLOW_PRIVATE": "true"}
    settings = make_settings(tmp_path, **env)
    record = records.account_insights("17841400000000001", "2026-11-26", {"reach": 7}, {}, "schedule")
    receiver.script = [(410, {})]  # the receiver is gone: dead-lettered at once, the sink disabled
    delivery.emit(redis, settings, [record])
    run_worker(settings)
    listed = igrelay("failed", "list", cwd=tmp_path, **env)
    assert listed.returncode == 0 and "1 dead letter;" in listed.stdout and "SinkGone" in listed.stdout
    assert "/hook" not in listed.stdout
    replayed = igrelay("failed", "replay", "--sink", receiver.url + "/hook", cwd=tmp_path, **env)
    assert replayed.returncode == 0 and replayed.stdout.startswith("1 dead letter requeued"), replayed.stderr
    worker = igrelay("worker", "--burst", cwd=tmp_path, **env)
    assert worker.returncode == 0, worker.stderr
    assert [json.loads(b)["id"] for b in receiver.ok_bodies()] == [record["id"]]
    again = igrelay("failed", "list", "--json", cwd=tmp_path, **env)
    assert again.returncode == 0 and again.stdout == ""


def test_failed_replay_refuses_unknown_ids(tmp_path: Path, redis) -> None:  # type: ignore[no-untyped-def]
    done = igrelay("failed", "replay", "nope", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == "igrelay failed: not a dead letter: nope"


def test_failed_lists_and_replays_a_refused_delivery(tmp_path: Path, redis) -> None:  # type: ignore[no-untyped-def]
    from config import contract
    from workers import ingest

    body = b'{"object":"instagram","entry":[{"id":"","time":1e20,"changes":[{"field":"comments","value":{}}]}]}'
    redis.xadd(contract.INBOX, {"b": body, "t": "1"})
    ingest.drain(redis, make_settings(tmp_path), consumer="w")
    listed = igrelay("failed", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "1 dead letter;" in listed.stdout
    assert "inbox-" in listed.stdout and "account id is not numeric" in listed.stdout
    [item] = [json.loads(line) for line in igrelay("failed", "list", "--json", cwd=tmp_path).stdout.splitlines()]
    replayed = igrelay("failed", "replay", item["id"], cwd=tmp_path)
    assert replayed.returncode == 0 and replayed.stdout.startswith("1 dead letter requeued"), replayed.stderr
    assert [data[b"b"] for _eid, data in redis.xrange(contract.INBOX)] == [body]
