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
    # any query or form parameter whose name says secret (``?password=``, ``&api_key=``, ``;sig=``)
    re.compile(r"(?i)([?&;][\w.\-]*(?:pass|pwd|secret|token|key|sig|auth|proof|credential)[\w.\-]*=)[^&#\s\"']+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-|~+/=]+"),
    re.compile(r"(hooks\.slack\.com/services/)[^\s\"']+"),
    re.compile(r"(whsec_)[A-Za-z0-9+/=]+"),
    # the password of any URL, even an empty user's or one holding raw ``@``, ``%`` or ``:``: up to the last ``@``
    re.compile(r"(://[^:/\s@\"']*:)[^\s?#\"']*(@)"),
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
    values += [*settings.secret_keys, settings.metrics_token, settings.console_password]
    values += list(settings.access_tokens.values())
    return [v for v in values if v]


_HINTS = ("=", "earer", "EARER", "hooks.slack", "whsec_", "@")  # every pattern needs one of these


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
    """Scrubs the formatted message, any exception text and every ``extra`` field of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and value is not None and not isinstance(value, (bool, int, float)):
                setattr(record, key, _scrubbed(value))
        return True


def _scrubbed(value: object) -> object:
    """``value`` as it was when it holds nothing secret, else its text with the secrets replaced."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))
    clean = redact(text)
    return value if clean == text else clean


_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and any ``extra`` fields."""

    _skip = _STANDARD

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
        # Message, traceback and extra fields were scrubbed by RedactingFilter.
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
    # urllib3 logs each request's URL with its query at DEBUG; Meta's token endpoints carry tokens there.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, logging.getLevelName(settings.log_level)))
