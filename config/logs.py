"""Logging for both processes: one line per event, JSON off a terminal, secrets scrubbed.

``setup_logging(settings)`` installs a handler on the root logger whose filter runs
:func:`redact` over every message and traceback, so a token that slipped into an exception
text (requests puts URLs in them) still never reaches the log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable

from config.settings import Settings

_PATTERNS = [
    re.compile(r"(?i)((?:access_token|input_token|client_secret|appsecret_proof|fb_exchange_token|code)=)[^&\s\"']+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-|~+/=]+"),
    re.compile(r"(hooks\.slack\.com/services/)[^\s\"']+"),
    re.compile(r"(whsec_)[A-Za-z0-9+/=]+"),
    re.compile(r"(://[^:/\s@]+:)[^@\s/]+(@)"),
]
_secrets: list[str] = []


def register_secrets(values: Iterable[str | None]) -> None:
    """Add exact strings that must never be printed (tokens, app secrets, sinks' secrets)."""
    for value in values:
        if value and len(value) >= 6 and value not in _secrets:
            _secrets.append(value)
    _secrets.sort(key=len, reverse=True)


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret value a ``Settings`` holds, but sink URLs: each sink names its own secrets
    (``workers.sinks.secrets``), taught here whenever the sinks are configured or loaded."""
    values = [*settings.app_secrets, settings.verify_token, settings.access_token, settings.sink_secret]
    values += [settings.console_password, *(settings.secret_key or "").split(",")]
    values += list(settings.access_tokens.values())
    return [v for v in values if v]


_HINTS = ("=", "earer", "EARER", "hooks.slack", "whsec_", "@")


def redact(text: str) -> str:
    """``text`` with registered secrets and token-shaped substrings replaced by ``***``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    if not any(hint in text for hint in _HINTS):  # the common case: nothing shaped like a secret
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "***" + (m.group(2) if m.lastindex == 2 else ""), text)
    return text


class RedactingFilter(logging.Filter):
    """Scrubs the formatted message and any exception text of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and any ``extra`` fields."""

    _skip = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in self._skip})
        if record.exc_text:
            out["exc"] = record.exc_text
        # Message and traceback were scrubbed by RedactingFilter; extra fields are ids and counts.
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """One line for a person: time, level, logger, message, then each ``extra`` field as ``key=value``."""

    _skip = JsonFormatter._skip
    _quote = frozenset(' "=\n\t')

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = [f"{k}={self._value(v)}" for k, v in vars(record).items() if k not in self._skip]
        return " ".join([line, *fields])

    @classmethod
    def _value(cls, value: object) -> str:
        """The value as one token: quoted when it has spaces, quotes, ``=`` or is empty; scrubbed of secrets."""
        text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))
        text = redact(text)
        return json.dumps(text, ensure_ascii=False) if not text or cls._quote & set(text) else text


def setup_logging(settings: Settings) -> None:
    """Configure the root logger from ``LOG_LEVEL`` and ``LOG_FORMAT``."""
    register_secrets(settings_secrets(settings))
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in ("rq.worker", "rq.scheduler", "rq.queue"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
