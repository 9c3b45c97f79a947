"""The sink registry: every sink says its schemes, redaction, secrets and probe; a new one is a module and a line."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import logs
from config.settings import Settings
from igrelay.commands import check
from tests.conftest import make_settings
from tests.support import demo_sink
from workers import sinks
from workers.sinks import REGISTRY, Sink, configured, load, probe, redact, secrets, sink_class

DEMO = "demo://shelf:DEMOTOKEN0123@shelves.example/records"


def test_each_registry_line_names_a_class_that_serves_that_scheme() -> None:
    for scheme in REGISTRY:
        assert scheme in sink_class(f"{scheme}://x/y").schemes


def test_a_new_sink_is_one_module_and_one_registry_line(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(REGISTRY, "demo", "tests.support.demo_sink:DemoSink")
    settings = make_settings(tmp_path, IGRELAY_SINKS=DEMO)
    [(name, (url, options))] = configured(settings).items()
    assert logs.redact(f"failed at {url}") == "failed at ***" and "DEMOTOKEN0123" in secrets(url, options)
    assert logs.redact("token DEMOTOKEN0123") == "token ***"
    assert redact(url) == "demo://shelves.example/…"
    sink = load(url, options, settings)
    sink.send([{"id": "r1"}])
    assert demo_sink.SHELVES["/records"] == [{"id": "r1"}]
    rows = check.sink_rows(settings, None)
    assert [r.status for r in rows] == ["ok", "warn"] and "DEMOTOKEN" not in repr(rows)
    assert rows[0].text == f"{name} (demo://shelves.example/…) reachable"
    down = make_settings(tmp_path, IGRELAY_SINKS=DEMO.replace("shelves.example", "down"))
    [row] = check.sink_rows(down, None)
    assert row.status == "problem" and "the shelf is down" in row.text and row.fix


@pytest.mark.parametrize(
    ("url", "shown", "hidden"),
    [
        ("slack://hooks.slack.com/services/T000/B000/XXXXSECRET", "slack://hooks.slack.com/…", "XXXXSECRET"),
        ("https://user:pw123456@hooks.example/h/SECRETPATH", "https://hooks.example/…", "SECRETPATH"),
        (
            "postgresql://igrelay:hunter2@db.example:5432/igrelay_records",
            "postgresql://igrelay:***@db.example:5432/igrelay_records",
            "hunter2",
        ),
        (
            "redis://:pw123456@r.example:6379/2?stream=out&password=pw123456",
            "redis://r.example:6379/2?stream=out",
            "pw123456",
        ),
        ("sqlite:////var/lib/igrelay/records.sqlite3", "sqlite:////var/lib/igrelay/records.sqlite3", None),
        ("file:///var/lib/igrelay/records.jsonl", "file:///var/lib/igrelay/records.jsonl", None),
        ("stdout:", "stdout:", None),
        ("nosuch://u:pw123456@h/x", "nosuch://u:***@h/x", "pw123456"),
    ],
)
def test_each_sink_shows_its_url_without_its_secrets(url: str, shown: str, hidden: str | None) -> None:
    assert redact(url) == shown
    if hidden:
        assert hidden not in redact(url) and any(hidden in s for s in secrets(url, {}))


def test_what_each_sink_calls_secret() -> None:
    assert (
        secrets("sqlite:///x.sqlite3", {}) == [] and secrets("file:///tmp/x", {}) == [] and secrets("stdout:", {}) == []
    )
    assert "whsec_c2VjcmV0" in secrets("https://h.example/x", {"secret": "whsec_c2VjcmV0"})
    slack = secrets("slack://hooks.slack.com/services/T/B/X", {"endpoint": "http://127.0.0.1:9/services/T/B/X"})
    assert "http://127.0.0.1:9/services/T/B/X" in slack and "/services/T/B/X" in slack


def test_the_http_probe_follows_the_ssrf_guard_the_sink_sends_through(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    [blocked] = probe("h", "http://127.0.0.1:9/hook", {}, settings, None)
    assert blocked.status == "problem" and "private or loopback" in blocked.text
    [allowed] = probe("h", "http://127.0.0.1:9/hook", {"allow_private": True}, settings, None)
    assert allowed.status == "ok"


def test_a_disabled_sink_is_a_problem(redis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from workers.sinks import _ledger

    settings: Settings = make_settings(tmp_path)
    [(name, (url, options))] = configured(settings).items()
    _ledger.disable(redis, name, 0)
    [found] = probe(name, url, options, settings, redis)
    assert found.status == "problem" and "410 Gone" in found.text and name in found.fix


def test_the_base_sink_is_safe_by_default() -> None:
    assert Sink.redact("x://u:pw@h.example/a-long-secret-path?k=v") == "x://u:***@h.example/a-long-secr…"
    assert Sink.secrets("x://u:pw123456@h/x", {}) == ["x://u:pw123456@h/x", "pw123456"]
    assert sinks.sink_name(DEMO).startswith("demo-")
