"""Log lines: text for a person carries the ``extra`` fields as ``key=value``; JSON stays one object."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.logs import JsonFormatter, RedactingFilter, TextFormatter, setup_logging
from tests.conftest import make_settings


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger, its handlers and level put back after the test."""
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def emit(formatter: logging.Formatter, msg: str, *args: object, **extra: object) -> str:
    """What a handler with ``formatter`` (and the redacting filter) writes for one INFO record."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger("test.logs")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info(msg, *args, extra=extra)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return out.getvalue()


def test_text_lines_carry_their_fields() -> None:
    line = emit(TextFormatter(), "fetched", account="17841400000000001", media="18000000000000001", outcome="ok")
    assert line.count("\n") == 1
    assert line.rstrip().endswith(
        "INFO test.logs: fetched account=17841400000000001 media=18000000000000001 outcome=ok"
    )


def test_text_values_stay_one_token_each() -> None:
    line = emit(
        TextFormatter(), "delivery failed", sink="http", records=3, error='boom "x"\nnext', empty="", ids=[1, 2]
    )
    fields = line.rstrip().split(": delivery failed ")[1]
    assert fields == 'sink=http records=3 error="boom \\"x\\"\\nnext" empty="" ids=[1,2]'


def test_text_fields_are_scrubbed_of_secrets() -> None:
    line = emit(TextFormatter(), "delivery failed", error="GET https://x/?access_token=EAAB123secret failed")
    assert "EAAB123secret" not in line and "access_token=***" in line


def test_a_line_without_fields_is_as_before() -> None:
    assert emit(TextFormatter(), "worker %s started", "w1").rstrip().endswith("INFO test.logs: worker w1 started")


def test_json_is_unchanged() -> None:
    out = json.loads(emit(JsonFormatter(), "fetched", media="1", outcome="ok"))
    assert out["msg"] == "fetched" and out["media"] == "1" and out["outcome"] == "ok" and out["level"] == "info"


def test_log_format_picks_the_formatter(tmp_path: Path, root: logging.Logger) -> None:
    setup_logging(make_settings(tmp_path, LOG_FORMAT="text"))
    assert isinstance(root.handlers[0].formatter, TextFormatter)
    setup_logging(make_settings(tmp_path, LOG_FORMAT="json"))
    assert isinstance(root.handlers[0].formatter, JsonFormatter)
