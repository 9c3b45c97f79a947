"""Who may use the console: a password, a signed session cookie, CSRF tokens, slowed-down failures.

As the OWASP session and CSRF cheat sheets say: the session is renewed at login (no fixation), the
cookie is HttpOnly, SameSite=Lax and Secure whenever the request came over https (through the
trusted proxy), every POST carries a per-session token compared in constant time, and failed
logins are counted per client address in Redis (429 after ``MAX_FAILURES`` a minute).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from flask import Flask, Request, abort, current_app, request, session
from flask.sessions import SecureCookieSessionInterface

from config import contract, crypto
from config.settings import Settings

MAX_FAILURES = 10  # failed logins per client and minute before 429
FAILURE_WINDOW = 60
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def session_keys(settings: Settings) -> list[bytes]:
    """The keys that sign console sessions, derived from ``IGRELAY_SECRET_KEY``: the current one
    first, then one per older key so sessions survive a rotation."""
    return crypto.derive_all(settings, crypto.CONSOLE_SESSION)


class ConsoleSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, opened only under ``/console`` and Secure over https."""

    def open_session(self, app: Flask, request: Request) -> Any:
        if not request.path.startswith("/console"):
            return None  # Flask's null session, as without the console
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure


def password_mark(password: str) -> str:
    """A fingerprint of the password kept in the session: changing the password ends every session."""
    key = current_app.secret_key
    assert isinstance(key, bytes)  # noqa: S101  # set by init_app
    return hmac.new(key, password.encode(), hashlib.sha256).hexdigest()[:16]


def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Abort 400 when a POST carries no CSRF token, 403 when it carries a wrong one."""
    given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not given:
        abort(400, "this form is missing its CSRF token: reload the page")
    expected = session.get("csrf")
    if not isinstance(expected, str) or not hmac.compare_digest(given.encode(), expected.encode()):
        abort(403, "this form's CSRF token is stale: reload the page")


def logged_in(settings: Settings) -> bool:
    """True for a session that logged in with the current password less than its lifetime ago."""
    started = session.get("at")
    if not isinstance(started, (int, float)) or settings.console_password is None:
        return False
    fresh = time.time() - started < current_app.permanent_session_lifetime.total_seconds()
    return fresh and session.get("pw") == password_mark(settings.console_password)


def start_session(settings: Settings) -> None:
    """A new session after a good password (old contents dropped, new CSRF token)."""
    assert settings.console_password is not None  # noqa: S101  # the console is on
    session.clear()
    session.permanent = True
    session.update(at=int(time.time()), pw=password_mark(settings.console_password))
    csrf_token()


def throttled(redis: Any, client: str) -> bool:
    """True when ``client`` failed ``MAX_FAILURES`` logins within the last minute."""
    return int(redis.get(contract.console_login_failures(client)) or 0) >= MAX_FAILURES


def count_failure(redis: Any, client: str) -> None:
    """Count a failed login for ``client`` (the window starts at its first failure)."""
    key = contract.console_login_failures(client)
    pipe = redis.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, FAILURE_WINDOW, nx=True)
    pipe.execute()


def password_ok(settings: Settings, given: str) -> bool:
    """Constant-time comparison with ``IGRELAY_CONSOLE_PASSWORD``."""
    expected = (settings.console_password or "").encode()
    return bool(expected) and hmac.compare_digest(given.encode(), expected)
