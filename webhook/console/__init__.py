"""The web console at ``/console``: see and steer igrelay in a browser.

Off unless ``IGRELAY_CONSOLE_PASSWORD`` is set; then :func:`init_app` adds a blueprint of its own
(server-rendered Jinja templates, inline SVG charts, one small script, every asset served from
``static/``), a session cookie signed with a key derived from ``IGRELAY_SECRET_KEY``, and
``ProxyFix`` for ``/console`` requests only. Requests to ``/webhook`` keep Flask's null session
and skip the proxy fix, so the console costs the hot path nothing.

Live state comes from Redis (``live``), history from the first SQL sink (``history``), dead letters
from RQ's registries (``config.deadletters``). The console never writes records.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from redis import Redis

from config.settings import Settings
from webhook.console.auth import ConsoleSessions, session_keys

PREFIX = "/console"
SESSION_HOURS = 12


class ProxyFixForConsole:
    """``ProxyFix`` (``hops`` trusted proxies) on ``/console`` requests only."""

    def __init__(self, wsgi_app: Any, hops: int) -> None:
        from werkzeug.middleware.proxy_fix import ProxyFix

        self.wsgi_app = wsgi_app
        self.fixed = ProxyFix(wsgi_app, x_for=hops, x_proto=hops, x_host=0) if hops else wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO", "").startswith(PREFIX):
            return self.fixed(environ, start_response)
        return self.wsgi_app(environ, start_response)


def init_app(app: Flask, settings: Settings, redis: Redis) -> None:
    """Serve the console on ``app`` (the caller checks that a console password is set)."""
    from datetime import timedelta

    from webhook.console.views import bp

    settings.require_console()
    keys = session_keys(settings)
    app.secret_key = keys[0]
    app.config["SECRET_KEY_FALLBACKS"] = keys[1:]
    app.session_interface = ConsoleSessions()
    app.config.update(
        SESSION_COOKIE_NAME="igrelay_console",
        SESSION_COOKIE_PATH=PREFIX,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
    )
    app.extensions["igrelay_console"] = {"settings": settings, "redis": redis}
    app.register_blueprint(bp, url_prefix=PREFIX)
    app.wsgi_app = ProxyFixForConsole(app.wsgi_app, settings.trusted_proxies)  # type: ignore[method-assign]
