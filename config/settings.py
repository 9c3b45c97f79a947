"""igrelay's settings: the one place that reads the environment.

``Settings.from_env()`` reads ``os.environ`` over an optional ``.env`` file in the working
directory and the optional TOML file named by ``IGRELAY_CONFIG``. Every value is checked here,
the TOML tables read while the processes run (``[fetch]``, ``[graph]``, ``[watchdog]``,
``[metrics]``) included; a bad one raises ``ConfigError`` whose text is one line naming it.
Secrets are kept out of ``repr()`` so a logged ``Settings`` leaks nothing.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from config import redis_conn

DEFAULT_GRAPH_API_URL = "https://graph.instagram.com"
DEFAULT_GRAPH_API_VERSION = "v25.0"
LOGIN_TYPES = ("instagram", "facebook")
DEFAULT_STORY_SCHEDULE = "15m,1h,3h,6h,12h,23h"
STORY_LIFETIME = 24 * 3600  # https://developers.facebook.com/docs/instagram-platform/reference/instagram-media/insights
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_SECRET_KEY = 16  # characters of IGRELAY_SECRET_KEY; `generator: secret` makes 64


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the text names the variable."""


def parse_duration(name: str, raw: str) -> int:
    """Seconds from ``30``, ``90s``, ``10m``, ``6h`` or ``7d``."""
    match = _DURATION.match(raw)
    if not match:
        raise ConfigError(f"{name}: {raw!r} is not a duration (use 30, 90s, 10m, 6h or 7d)")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def parse_schedule(name: str, raw: str) -> tuple[int, ...]:
    """Sorted, de-duplicated positive offsets from a comma-separated list of durations."""
    parts = [p for p in (s.strip() for s in raw.split(",")) if p]
    offsets = sorted({parse_duration(name, p) for p in parts})
    if any(o <= 0 for o in offsets):
        raise ConfigError(f"{name}: every offset must be greater than zero")
    return tuple(offsets)


def _parse_int(name: str, raw: str, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _parse_tokens(name: str, raw: str) -> dict[str, str]:
    tokens: dict[str, str] = {}
    for item in (s.strip() for s in raw.split(",")):
        if not item:
            continue
        account, sep, token = item.partition("=")
        if not sep or not account.strip().isdigit() or not token.strip():
            # Never echo the item: it holds a token.
            raise ConfigError(f"{name}: expected ACCOUNT_ID=TOKEN pairs separated by commas")
        tokens[account.strip()] = token.strip()
    return tokens


def _parse_http_url(name: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}: {raw!r} is not an http(s) URL")
    return raw.rstrip("/")


def _parse_redis_url(name: str, raw: str) -> str:
    if redis_conn.is_sentinel(raw):
        try:
            redis_conn.parse_sentinel_url(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc} (redis+sentinel://host:26379,host2:26379/MASTER/DB)") from None
        return raw
    if urlsplit(raw).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"{name}: expected a redis://, rediss://, unix:// or redis+sentinel:// URL")
    return raw


def _read_toml(name: str, path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path!r} ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: {path!r} is not valid TOML ({exc})") from None


def redact_url(url: str, path_chars: int | None = 12) -> str:
    """``url`` safe to print: no password, no query, the path cut after ``path_chars`` (``None``: whole).

    Sink URLs are shown by their sinks (``workers.sinks.redact``); this is for REDIS_URL and GRAPH_API_URL.
    """
    parts = urlsplit(url)
    if redis_conn.is_sentinel(url):  # several host:port, which urlsplit's hostname and port do not read
        hosts = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{hosts}{parts.path}"
    netloc = parts.hostname or ""
    try:
        netloc += f":{parts.port}" if parts.port else ""
    except ValueError:  # a port that is not a number is shown as nothing rather than raising
        pass
    if parts.username:
        netloc = f"{parts.username}:***@{netloc}" if parts.password else f"{parts.username}@{netloc}"
    path = parts.path
    if path_chars is not None and len(path) > path_chars:
        path = path[:path_chars] + "…"
    return f"{parts.scheme}://{netloc}{path}" if netloc or path else f"{parts.scheme}:"


@dataclass(frozen=True)
class Settings:
    """Typed, validated configuration; the TOML tables' values are checked and typed on construction."""

    app_secrets: tuple[str, ...] = field(default=(), repr=False)
    verify_token: str | None = field(default=None, repr=False)
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    graph_api_url: str = DEFAULT_GRAPH_API_URL
    graph_api_version: str = DEFAULT_GRAPH_API_VERSION
    access_token: str | None = field(default=None, repr=False)
    access_tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    sinks: tuple[str, ...] = field(default=("sqlite:///igrelay.sqlite3",), repr=False)
    config: Mapping[str, Any] = field(default_factory=dict, repr=False)
    debounce_seconds: int = 30
    refresh_schedule: tuple[int, ...] = (3600, 21600, 86400, 259200, 604800)
    poll_interval: int = 600
    max_body_bytes: int = 4 * 1024 * 1024
    port: int = 8000
    web_concurrency: int = 2
    log_level: str = "INFO"
    log_format: str = "json"
    sink_secret: str | None = field(default=None, repr=False)
    sink_allow_private: bool = False
    redis_tls_verify: bool = True
    redis_tls_ca: str | None = None
    secret_keys: tuple[str, ...] = field(default=(), repr=False)
    meta_app_id: str | None = None
    # The login flow (``/connect``): off unless META_APP_ID, IGRELAY_PUBLIC_URL and IGRELAY_SECRET_KEY are set.
    public_url: str | None = None
    oauth_dialog_url: str | None = None  # None: Meta's, by login type
    oauth_token_url: str | None = None
    login_type: str = ""  # IGRELAY_LOGIN_TYPE: "instagram" or "facebook"; "" means by GRAPH_API_URL
    metrics_token: str | None = field(default=None, repr=False)
    # The web console (off unless a password is set).
    console_password: str | None = field(default=None, repr=False)
    trusted_proxies: int = 1  # proxy hops whose X-Forwarded-For/-Proto the console believes
    story_schedule: tuple[int, ...] = (900, 3600, 10800, 21600, 43200, 82800)  # after a story is posted
    # From the TOML config, checked and typed in __post_init__.
    fetch_threads: int = field(init=False)  # [fetch] threads: Graph calls in flight per fetch job
    fetch_batch: int = field(init=False)  # [fetch] batch: media per fetch job
    graph_timeout: tuple[float, float] = field(init=False)  # [graph] connect_timeout, read_timeout (seconds)
    watchdog_interval: int = field(init=False)  # [watchdog] interval: seconds between checks (at least 60)
    watchdog_quiet: int = field(init=False)  # [watchdog] quiet: seconds without deliveries that count as stopped

    def __post_init__(self) -> None:
        fetch, graph, watchdog = (self.section(name) for name in ("fetch", "graph", "watchdog"))
        typed = {
            "fetch_threads": _toml_int("fetch", "threads", fetch.get("threads", 32)),
            "fetch_batch": _toml_int("fetch", "batch", fetch.get("batch", 200)),
            "graph_timeout": (
                _toml_seconds("graph", "connect_timeout", graph.get("connect_timeout", 3.05)),
                _toml_seconds("graph", "read_timeout", graph.get("read_timeout", 5.0)),
            ),
            "watchdog_interval": max(_toml_duration("watchdog", "interval", watchdog.get("interval", "1h")), 60),
            "watchdog_quiet": _toml_duration("watchdog", "quiet", watchdog.get("quiet", "48h")),
        }
        if not self.login_type:
            typed["login_type"] = _parse_login_type("", self.graph_api_url)
        for name, value in typed.items():
            object.__setattr__(self, name, value)  # frozen: set once, here
        _check_metrics(self.section("metrics"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, dotenv: bool = True) -> Settings:
        """Settings from ``environ`` (default ``os.environ`` over ``./.env``)."""
        env = dict(_dotenv_values() if dotenv and environ is None else {})
        env.update(os.environ if environ is None else environ)
        return cls._from_mapping({k: v for k, v in env.items() if v is not None})

    @classmethod
    def _from_mapping(cls, env: Mapping[str, str]) -> Settings:
        get = env.get
        version = get("GRAPH_API_VERSION", DEFAULT_GRAPH_API_VERSION).strip()
        if not re.fullmatch(r"v\d+\.\d+", version):
            raise ConfigError(f"GRAPH_API_VERSION: {version!r} is not a version like v25.0")
        level = get("LOG_LEVEL", "INFO").strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(f"LOG_LEVEL: {level!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        fmt = get("LOG_FORMAT", "").strip().lower() or ("text" if sys.stderr.isatty() else "json")
        if fmt not in ("json", "text"):
            raise ConfigError(f"LOG_FORMAT: {fmt!r} is not json or text")
        sinks = tuple(s.strip() for s in get("IGRELAY_SINKS", "sqlite:///igrelay.sqlite3").split(",") if s.strip())
        if not sinks:
            raise ConfigError("IGRELAY_SINKS: give at least one sink URL")
        config_path = get("IGRELAY_CONFIG", "").strip()
        config = _read_toml("IGRELAY_CONFIG", config_path) if config_path else {}
        return cls(
            app_secrets=tuple(s.strip() for s in get("META_APP_SECRET", "").split(",") if s.strip()),
            verify_token=get("META_VERIFY_TOKEN", "").strip() or None,
            redis_url=_parse_redis_url("REDIS_URL", get("REDIS_URL", "redis://127.0.0.1:6379/0").strip()),
            graph_api_url=_parse_http_url("GRAPH_API_URL", get("GRAPH_API_URL", DEFAULT_GRAPH_API_URL).strip()),
            graph_api_version=version,
            access_token=get("IG_ACCESS_TOKEN", "").strip() or None,
            access_tokens=_parse_tokens("IG_ACCESS_TOKENS", get("IG_ACCESS_TOKENS", "")),
            sinks=sinks,
            config=config,
            debounce_seconds=parse_duration("IGRELAY_DEBOUNCE_SECONDS", get("IGRELAY_DEBOUNCE_SECONDS", "30")),
            refresh_schedule=parse_schedule(
                "IGRELAY_REFRESH_SCHEDULE", get("IGRELAY_REFRESH_SCHEDULE", "1h,6h,24h,72h,7d")
            ),
            poll_interval=parse_duration("IGRELAY_POLL_INTERVAL", get("IGRELAY_POLL_INTERVAL", "10m")),
            max_body_bytes=_parse_int("IGRELAY_MAX_BODY_BYTES", get("IGRELAY_MAX_BODY_BYTES", "4194304"), 1),
            port=_parse_int("PORT", get("PORT", "8000"), 1),
            web_concurrency=_parse_int("WEB_CONCURRENCY", get("WEB_CONCURRENCY", "2"), 1),
            log_level=level,
            log_format=fmt,
            sink_secret=get("IGRELAY_SINK_SECRET", "").strip() or None,
            sink_allow_private=_parse_bool("IGRELAY_SINK_ALLOW_PRIVATE", get("IGRELAY_SINK_ALLOW_PRIVATE", "")),
            redis_tls_verify=_parse_bool("REDIS_TLS_VERIFY", get("REDIS_TLS_VERIFY", "true")),
            redis_tls_ca=_parse_file("REDIS_TLS_CA", get("REDIS_TLS_CA", "").strip()),
            secret_keys=_parse_secret_keys("IGRELAY_SECRET_KEY", get("IGRELAY_SECRET_KEY", "")),
            meta_app_id=_parse_app_id("META_APP_ID", get("META_APP_ID", "").strip()),
            public_url=_optional_url("IGRELAY_PUBLIC_URL", get("IGRELAY_PUBLIC_URL", "")),
            oauth_dialog_url=_optional_url("IGRELAY_OAUTH_DIALOG_URL", get("IGRELAY_OAUTH_DIALOG_URL", "")),
            oauth_token_url=_optional_url("IGRELAY_OAUTH_TOKEN_URL", get("IGRELAY_OAUTH_TOKEN_URL", "")),
            metrics_token=get("IGRELAY_METRICS_TOKEN", "").strip() or None,
            console_password=get("IGRELAY_CONSOLE_PASSWORD", "").strip() or None,
            trusted_proxies=_parse_int("IGRELAY_TRUSTED_PROXIES", get("IGRELAY_TRUSTED_PROXIES", "1")),
            login_type=_parse_login_type(get("IGRELAY_LOGIN_TYPE", ""), get("GRAPH_API_URL", DEFAULT_GRAPH_API_URL)),
            story_schedule=_parse_story_schedule(get("IGRELAY_STORY_SCHEDULE", DEFAULT_STORY_SCHEDULE)),
        )

    def require_web(self) -> Settings:
        """Raise unless what ``web`` needs is set."""
        if not self.app_secrets:
            raise ConfigError("META_APP_SECRET: not set; the webhook cannot verify deliveries without it")
        if not self.verify_token:
            raise ConfigError("META_VERIFY_TOKEN: not set; the subscription handshake needs it")
        return self

    def require_console(self) -> Settings:
        """Raise unless the console, when on, has a key to sign its sessions with."""
        if self.console_password and not self.secret_keys:
            raise ConfigError("IGRELAY_SECRET_KEY: not set; the console needs it to sign its sessions")
        return self

    def redis_options(self) -> dict[str, Any]:
        """Extra Redis client options for ``rediss://``: ``REDIS_TLS_CA`` is the bundle the certificate is
        checked against; Heroku's is self-signed with no CA given, so ``REDIS_TLS_VERIFY=false`` keeps TLS
        but skips the check (anyone on the path could then read and write Redis)."""
        if not self.redis_url.startswith("rediss://"):
            return {}
        if not self.redis_tls_verify:
            return {"ssl_cert_reqs": "none"}
        if self.redis_tls_ca:
            return {"ssl_cert_reqs": "required", "ssl_ca_certs": self.redis_tls_ca}
        return {}

    def token_for(self, account_id: str) -> str | None:
        """The access token for ``account_id``: its own, else ``IG_ACCESS_TOKEN``."""
        return self.access_tokens.get(account_id) or self.access_token

    @property
    def accounts(self) -> tuple[str, ...]:
        """Accounts named in ``IG_ACCESS_TOKENS``; every part uses ``config.accounts``, which adds connected ones."""
        return tuple(self.access_tokens)

    @property
    def login_off(self) -> str | None:
        """Why the login flow (``/connect``) is off, naming what to set; None when it is on."""
        missing = [
            name
            for name, value in (
                ("META_APP_ID", self.meta_app_id),
                ("META_APP_SECRET", self.app_secrets),
                ("IGRELAY_PUBLIC_URL", self.public_url),
                ("IGRELAY_SECRET_KEY", self.secret_keys),
            )
            if not value
        ]
        return f"the login flow is off: set {', '.join(missing)}" if missing else None

    @property
    def graph_base(self) -> str:
        """``GRAPH_API_URL`` joined with the pinned version, e.g. ``https://graph.instagram.com/v25.0``."""
        return f"{self.graph_api_url}/{self.graph_api_version}"

    @property
    def is_instagram_login(self) -> bool:
        """True under Instagram Login (``IGRELAY_LOGIN_TYPE=instagram``), False under Facebook Login."""
        return self.login_type == "instagram"

    def section(self, name: str) -> Mapping[str, Any]:
        """A table of the TOML config (``{}`` when absent)."""
        value = self.config.get(name, {})
        if not isinstance(value, Mapping):
            raise ConfigError(f"IGRELAY_CONFIG: [{name}] must be a table")
        return value


def _toml_int(table: str, key: str, raw: Any) -> int:
    if isinstance(raw, bool):
        raise ConfigError(f"IGRELAY_CONFIG [{table}] {key}: {raw!r} is not a whole number")
    return _parse_int(f"IGRELAY_CONFIG [{table}] {key}", str(raw), 1)


def _toml_seconds(table: str, key: str, raw: Any) -> float:
    name = f"IGRELAY_CONFIG [{table}] {key}"
    try:
        value = float(raw) if not isinstance(raw, bool) else -1.0
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {raw!r} is not a number of seconds") from None
    if not value > 0:
        raise ConfigError(f"{name}: must be more than 0 seconds, got {raw!r}")
    return value


def _toml_duration(table: str, key: str, raw: Any) -> int:
    return parse_duration(f"IGRELAY_CONFIG [{table}] {key}", str(raw))


def _check_metrics(table: Mapping[str, Any]) -> None:
    """Each ``[metrics]`` entry overrides a media kind's metric set: a list of names."""
    for key, value in table.items():
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"IGRELAY_CONFIG: [metrics] {key} must be a list of metric names")


def _parse_file(name: str, raw: str) -> str | None:
    if raw and not Path(raw).is_file():
        raise ConfigError(f"{name}: {raw!r} is not a readable file")
    return raw or None


def _parse_secret_keys(name: str, raw: str) -> tuple[str, ...]:
    """Comma-separated secrets, the first current; each long enough to be worth deriving keys from."""
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if any(len(k) < MIN_SECRET_KEY for k in keys):
        # Never echo the value: it is the secret.
        raise ConfigError(f"{name}: each key must be at least {MIN_SECRET_KEY} characters of random text")
    return keys


def _optional_url(name: str, raw: str) -> str | None:
    return _parse_http_url(name, raw.strip()) if raw.strip() else None


def _parse_app_id(name: str, raw: str) -> str | None:
    if raw and not raw.isdigit():
        raise ConfigError(f"{name}: {raw!r} is not a numeric app id")
    return raw or None


def _parse_login_type(raw: str, graph_api_url: str) -> str:
    """``IGRELAY_LOGIN_TYPE``, defaulting from the Graph host: graph.facebook.com means Facebook Login."""
    value = raw.strip().lower()
    if not value:
        return "facebook" if urlsplit(graph_api_url.strip()).hostname == "graph.facebook.com" else "instagram"
    if value not in LOGIN_TYPES:
        raise ConfigError(f"IGRELAY_LOGIN_TYPE: {raw!r} is not instagram or facebook")
    return value


def _parse_story_schedule(raw: str) -> tuple[int, ...]:
    """Offsets after a story is posted, each inside its 24 hours."""
    offsets = parse_schedule("IGRELAY_STORY_SCHEDULE", raw)
    if not offsets or offsets[-1] >= STORY_LIFETIME:
        raise ConfigError("IGRELAY_STORY_SCHEDULE: give offsets under 24h (a story and its insights last 24 hours)")
    return offsets


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}: {raw!r} is not true or false")


def _dotenv_values() -> dict[str, str]:
    path = Path.cwd() / ".env"
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}
