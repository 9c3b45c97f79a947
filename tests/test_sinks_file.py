"""The file sink: whole lines only, even after a crash mid-write."""

from __future__ import annotations

import json
import os
import stat

from conftest import make_settings

from workers import records as R
from workers.sinks import load


def test_a_partial_last_line_is_cut_before_appending(tmp_path) -> None:
    path = tmp_path / "out" / "records.jsonl"
    sink = load(f"file://{path}", {}, make_settings(tmp_path))
    first = R.account_insights("1", "2026-11-01", {"reach": 1}, {}, "poll")
    second = R.account_insights("1", "2026-11-02", {"reach": 2}, {}, "poll")
    sink.send([first])
    with open(path, "a") as fh:
        fh.write('{"kind": "account_insig')  # a crash mid-write
    sink.send([second])
    sink.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [first["id"], second["id"]]


def test_a_created_file_is_owner_only_whatever_the_umask(tmp_path) -> None:
    path = tmp_path / "records.jsonl"
    sink = load(f"file://{path}", {}, make_settings(tmp_path))
    old = os.umask(0)
    try:
        sink.send([R.account_insights("1", "2026-11-01", {"reach": 1}, {}, "poll")])
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
