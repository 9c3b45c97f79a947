"""SQLite and PostgreSQL sinks against real databases: layout, upsert by id, queryable metrics."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import traceback
import uuid
from typing import ClassVar

import pytest

from config import tables
from config.settings import ConfigError
from workers import records as R
from workers.sinks import SinkError, load, probe
from workers.sinks.postgres import PostgresSink
from workers.sinks.sqlite import sqlite_path

PG_URL = os.environ.get("IGRELAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def media(i: int, reach: int = 10) -> dict:
    node = {"id": str(i), "media_type": "VIDEO", "media_product_type": "REELS", "permalink": f"https://x/{i}"}
    return R.media_insights("17841", node, {"reach": reach, "likes": 2}, {"saved": "no_data"}, "poll")


def test_sqlite_paths() -> None:
    assert sqlite_path("sqlite:///rel/db.sqlite3") == "rel/db.sqlite3"
    assert sqlite_path("sqlite:////abs/db.sqlite3") == "/abs/db.sqlite3"


def test_sqlite_refuses_a_batch_when_no_rowid_is_left_after_the_largest(settings, tmp_path) -> None:
    """The metric rows are read for the rowids after the batch's largest; a table whose largest rowid is
    the last one would get rowids at random, so the sink refuses (retried) rather than store half."""
    path = tmp_path / "full.sqlite3"
    sink = load(f"sqlite:///{path}", {}, settings)
    try:
        sink.send([media(1)])
        with sqlite3.connect(path) as db:
            db.execute("UPDATE records SET rowid = 9223372036854775807")
        db.close()
        with pytest.raises(SinkError):
            sink.send([media(2)])
    finally:
        sink.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM records").fetchone()[0] == 1
    db.close()


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
    with pytest.raises(SinkError) as info:
        sink.send([media(1)])
    sink.close()
    assert "sqlite sink" in str(info.value) and str(tmp_path) not in str(info.value)  # a code, not the path


def test_sqlite_files_are_owner_only_whatever_the_umask(settings, tmp_path) -> None:
    path = tmp_path / "r.sqlite3"
    sink = load(f"sqlite:///{path}", {}, settings)
    old = os.umask(0)
    try:
        sink.send([media(1)])
        modes = {p.name: stat.S_IMODE(os.stat(p).st_mode) for p in tmp_path.glob("r.sqlite3*")}
    finally:
        os.umask(old)
        sink.close()
    assert modes == {"r.sqlite3": 0o600, "r.sqlite3-wal": 0o600, "r.sqlite3-shm": 0o600}


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


def test_postgres_derives_the_same_metric_and_breakdown_rows_as_sqlite(settings, pg_schema, tmp_path) -> None:
    """PostgreSQL reads metrics and breakdowns out of the stored JSON; SQLite gets them from Python:
    the same records must give the same rows (numbers only, booleans and text left out), once."""
    conn, schema = pg_schema
    odd = media(1, reach=7)
    odd["metrics"] = {"reach": 7, "ratio": 0.25, "big": 2**40, "flag": True, "note": "n/a", "none": None}
    odd["breakdowns"] = {"reach": {"follow_type": {"FOLLOWER": 5, "X": "text", "B": False}}}
    plain = media(2)
    plain["metrics"] = {}
    event = R.account_insights("1", "2026-11-25", {"follows": 9}, {}, "schedule")
    batch = [odd, plain, event, odd]
    sqlite_sink = load(f"sqlite:///{tmp_path}/p.sqlite3", {}, settings)
    pg_sink = load(PG_URL, {"schema": schema}, settings)
    try:
        for sink in (sqlite_sink, pg_sink):
            sink.send(batch)
            sink.send(batch)  # redelivered: nothing twice
    finally:
        sqlite_sink.close()
        pg_sink.close()
    metrics = "SELECT record_id, name, value FROM {t}record_metrics ORDER BY 1, 2"
    breakdowns = "SELECT record_id, metric, breakdown, key, value FROM {t}record_breakdowns ORDER BY 1, 2, 3, 4"
    with sqlite3.connect(tmp_path / "p.sqlite3") as db:
        lite = [db.execute(q.format(t="")).fetchall() for q in (metrics, breakdowns)]
    db.close()
    pg = [[tuple(r) for r in conn.execute(q.format(t=f"{schema}.")).fetchall()] for q in (metrics, breakdowns)]
    assert pg == lite
    assert {(name, value) for rid, name, value in lite[0] if rid == odd["id"]} == {
        ("reach", 7.0),
        ("ratio", 0.25),
        ("big", float(2**40)),
    }
    assert [row[1:] for row in lite[1]] == [("reach", "follow_type", "FOLLOWER", 5.0)]


def test_postgres_tables_made_with_the_old_foreign_keys_still_take_batches(settings, pg_schema) -> None:
    """Tables created by earlier versions declare ``record_id`` a foreign key: the one statement that
    stores records, metrics and breakdowns passes its checks."""
    conn, schema = pg_schema
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for statement in tables.ddl("", "JSONB", schema):
        if "record_metrics (" in statement or "record_breakdowns (" in statement:
            statement = statement.replace(
                "record_id TEXT NOT NULL,", f"record_id TEXT NOT NULL REFERENCES {schema}.records(id),"
            )
        conn.execute(statement)
    found = {"follows_and_unfollows": {"follow_type": {"FOLLOWER": 9}}}
    batch = [media(i) for i in range(20)]
    batch.append(R.account_insights("1", "2026-11-25", {"follows": 9}, {}, "schedule", breakdowns=found))
    sink = load(PG_URL, {"schema": schema}, settings)
    try:
        sink.send(batch)
        sink.send(batch)
    finally:
        sink.close()
    foreign = conn.execute(
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = %s::regnamespace", [schema]
    ).fetchone()[0]
    assert foreign == 2
    counts = [
        conn.execute(f"SELECT count(*) FROM {schema}.{t}").fetchone()[0]
        for t in (tables.RECORDS, tables.METRICS, tables.BREAKDOWNS)
    ]
    assert counts == [21, 41, 1]


class FailingOncePostgres(PostgresSink):
    """PostgreSQL whose first send fails after its COPY would have run."""

    failed: ClassVar[list[int]] = []

    def __init__(self, url, options, settings) -> None:  # type: ignore[no-untyped-def]
        super().__init__(url.replace("failpg:", "postgresql:", 1), options, settings)

    def send(self, records) -> None:  # type: ignore[no-untyped-def]
        if not FailingOncePostgres.failed:
            FailingOncePostgres.failed.append(len(records))
            raise SinkError("postgresql sink: a moment's trouble")
        super().send(records)


def test_postgres_through_the_outbox_stores_each_record_as_it_was(tmp_path, redis, pg_schema, monkeypatch) -> None:
    """The outbox hands the PostgreSQL sink its JSON text unparsed (non-ASCII escaped): the database
    holds each record exactly, after a failed first attempt too."""
    from conftest import make_settings

    from workers import delivery
    from workers.sinks import REGISTRY

    conn, schema = pg_schema
    monkeypatch.setitem(REGISTRY, "failpg", f"{__name__}:FailingOncePostgres")
    monkeypatch.setattr(FailingOncePostgres, "failed", [])
    url = PG_URL.replace("postgresql:", "failpg:", 1)
    config = tmp_path / "igrelay.toml"
    config.write_text(f'[sinks.pg]\nurl = "{url}"\nschema = "{schema}"\n')
    settings = make_settings(tmp_path, IGRELAY_SINKS=url, IGRELAY_CONFIG=str(config))
    records = [media(i, reach=i) for i in range(3)]
    records[0]["caption"] = 'café ✓ \\ "quoted" \t tab, 😀'
    delivery.emit(redis, settings, records)
    with pytest.raises(SinkError):
        delivery.deliver(redis, settings, "pg")
    assert FailingOncePostgres.failed == [3]
    [claim] = redis.scan_iter("igrelay:outbox-claim:*")
    assert delivery.deliver(redis, settings, "pg", None) == 0  # a new job: the outbox is empty, the claim kept
    job_claim = claim.decode().rsplit(":", 1)[1]
    monkeypatch.setattr(delivery, "_claim_id", lambda job: job_claim)  # the failed job, retried
    assert delivery.deliver(redis, settings, "pg") == 3
    stored = conn.execute(f"SELECT data FROM {schema}.records").fetchall()
    assert sorted((row[0] for row in stored), key=lambda r: r["id"]) == sorted(records, key=lambda r: r["id"])
    reach = conn.execute(f"SELECT sum(value) FROM {schema}.record_metrics WHERE name = 'reach'").fetchone()[0]
    assert reach == 0 + 1 + 2 and list(redis.scan_iter("igrelay:outbox*")) == []


def test_postgres_unreachable_is_retryable_and_hides_the_password(settings) -> None:
    sink = load("postgresql://u:hunter2secret@127.0.0.1:1/db", {}, settings)
    with pytest.raises(SinkError) as info:
        sink.send([media(1)])
    sink.close()
    assert "hunter2secret" not in str(info.value) and info.value.__cause__ is None


def _pieces(secret: str, size: int = 4) -> set[str]:
    """Every ``size``-character piece of ``secret`` (the whole of a shorter one)."""
    return {secret[i : i + size] for i in range(max(1, len(secret) - size + 1))}


@pytest.mark.parametrize("password", ["p%ss", "zq%Wr0ngPa55"])
def test_postgres_error_and_probe_never_quote_a_password_with_a_raw_percent(settings, password) -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql://postgres:{password}@127.0.0.1:5432/test"  # libpq quotes the bad "%" token back
    sink = load(url, {}, settings)
    with pytest.raises(SinkError) as info:
        sink.send([media(1)])
    sink.close()
    assert "ProgrammingError" in str(info.value)
    stored = "".join(traceback.format_exception(info.value))  # what RQ keeps and `failed list` shows
    found = " ".join(f.text + f.fix for f in probe("pg", url, {}, settings, None))
    leaks = [p for p in _pieces(password) for text in (stored, found) if p in text]
    assert not leaks, (stored, found)


def test_check_never_quotes_a_postgres_password(tmp_path, redis, graph_sandbox) -> None:
    from tests.test_cli import igrelay, sandbox_env

    password = "ch%ck"
    env = sandbox_env(graph_sandbox, tmp_path, IGRELAY_SINKS=f"postgresql://postgres:{password}@127.0.0.1:5432/test")
    done = igrelay("check", cwd=tmp_path, **env)
    assert "PROBLEM" in done.stdout and "ProgrammingError" in done.stdout, done.stdout + done.stderr
    assert not [p for p in _pieces(password) if p in done.stdout + done.stderr], done.stdout + done.stderr


def test_a_kept_connection_serves_the_next_sink_of_its_process_only(settings, tmp_path, monkeypatch) -> None:
    from workers.sinks import _reuse

    url = f"sqlite:///{tmp_path}/r.sqlite3"
    first = load(url, {}, settings)
    first.send([media(1)])
    kept = first._conn
    first.close()
    second = load(url, {}, settings)
    second.send([media(1), media(2)])  # redelivered through the kept connection: stored once
    assert second._conn is kept
    second.close()
    key = second._key()
    real_pid = os.getpid()
    monkeypatch.setattr(_reuse.os, "getpid", lambda: real_pid + 1)  # as in a forked child
    assert _reuse.take(key) is None
    monkeypatch.undo()
    _reuse.close_all()
    with sqlite3.connect(tmp_path / "r.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM records").fetchone()[0] == 2
    db.close()
