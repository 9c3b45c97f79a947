"""SQLite and PostgreSQL sinks against real databases: layout, upsert by id, queryable metrics."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid

import pytest

from config.settings import ConfigError
from workers import records as R
from workers.sinks import SinkError, load
from workers.sinks.sqlite import sqlite_path

PG_URL = os.environ.get("IGRELAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def media(i: int, reach: int = 10) -> dict:
    node = {"id": str(i), "media_type": "VIDEO", "media_product_type": "REELS", "permalink": f"https://x/{i}"}
    return R.media_insights("17841", node, {"reach": reach, "likes": 2}, {"saved": "no_data"}, "poll")


def test_sqlite_paths() -> None:
    assert sqlite_path("sqlite:///rel/db.sqlite3") == "rel/db.sqlite3"
    assert sqlite_path("sqlite:////abs/db.sqlite3") == "/abs/db.sqlite3"


def test_sqlite_relative_url_is_relative_to_cwd(settings, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    sink = load("sqlite:///data/rel.sqlite3", {}, settings)
    try:
        sink.send([media(1)])
    finally:
        sink.close()
    assert (tmp_path / "data" / "rel.sqlite3").exists()


def test_sqlite_upserts_by_id_in_wal_with_queryable_metrics(settings, tmp_path) -> None:
    path = tmp_path / "r.sqlite3"
    sink = load(f"sqlite:///{path}", {}, settings)
    batch = [media(i, reach=i * 10) for i in range(50)]
    try:
        sink.send(batch)
        sink.send(batch[:10] + batch[:10])  # redelivered, and repeated inside one batch
    finally:
        sink.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM records").fetchone()[0] == 50
        row = db.execute(
            "SELECT r.media_id, m.value FROM records r JOIN record_metrics m ON m.record_id = r.id"
            " WHERE m.name = 'reach' AND r.media_id = '7'"
        ).fetchone()
        assert row == ("7", 70.0)
        data = json.loads(db.execute("SELECT data FROM records WHERE media_id = '3'").fetchone()[0])
        assert data["unavailable"] == {"saved": "no_data"} and data["kind"] == "media_insights"
    db.close()


def test_sqlite_table_prefix_and_unwritable_path(settings, tmp_path) -> None:
    with pytest.raises(ConfigError):
        load(f"sqlite:///{tmp_path}/x.sqlite3", {"table_prefix": "x; DROP"}, settings)
    (tmp_path / "dir.sqlite3").mkdir()
    sink = load(f"sqlite:///{tmp_path}/dir.sqlite3", {"table_prefix": "ig_"}, settings)
    with pytest.raises(SinkError):
        sink.send([media(1)])
    sink.close()


@pytest.fixture
def pg_schema():  # type: ignore[no-untyped-def]
    psycopg = pytest.importorskip("psycopg")
    schema = f"igrelay_test_{uuid.uuid4().hex[:8]}"
    try:
        conn = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        if os.environ.get("CI"):  # CI machines have PostgreSQL: a missing one is a failure there
            pytest.fail(f"no PostgreSQL at {PG_URL}")
        pytest.skip(f"no PostgreSQL at {PG_URL}")
    yield conn, schema
    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    conn.close()


def test_postgres_same_layout_and_upsert(settings, pg_schema) -> None:
    conn, schema = pg_schema
    sink = load(PG_URL, {"schema": schema}, settings)
    batch = [media(i, reach=i) for i in range(100)]
    try:
        sink.send(batch)
        sink.send(batch)
    finally:
        sink.close()
    assert conn.execute(f"SELECT count(*) FROM {schema}.records").fetchone()[0] == 100
    row = conn.execute(
        f"SELECT m.value, r.data->>'permalink' FROM {schema}.records r"
        f" JOIN {schema}.record_metrics m ON m.record_id = r.id WHERE m.name = 'reach' AND r.media_id = '42'"
    ).fetchone()
    assert row == (42.0, "https://x/42")


def test_postgres_breakdown_rows(settings, pg_schema) -> None:
    conn, schema = pg_schema
    found = {"follows_and_unfollows": {"follow_type": {"FOLLOWER": 9, "NON_FOLLOWER": 3}}}
    record = R.account_insights("1", "2026-11-25", {"follows": 9, "unfollows": 3}, {}, "schedule", breakdowns=found)
    sink = load(PG_URL, {"schema": schema}, settings)
    try:
        sink.send([record, record])
        sink.send([record])
    finally:
        sink.close()
    rows = conn.execute(
        f"SELECT key, value FROM {schema}.record_breakdowns WHERE metric = 'follows_and_unfollows' ORDER BY key"
    ).fetchall()
    assert rows == [("FOLLOWER", 9.0), ("NON_FOLLOWER", 3.0)]


def test_postgres_unreachable_is_retryable_and_hides_the_password(settings) -> None:
    sink = load("postgresql://u:hunter2secret@127.0.0.1:1/db", {}, settings)
    with pytest.raises(SinkError) as info:
        sink.send([media(1)])
    sink.close()
    assert "hunter2secret" not in str(info.value) and info.value.__cause__ is None
