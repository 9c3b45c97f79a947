"""``/connect``: an operator connects Instagram accounts with Meta's login (``config.login`` does the talking).

``GET /connect`` needs the single-use link ``igrelay accounts connect`` prints (the console's Connect
button makes one for its session); without it the answer is 401, or the console's login when the
console is on. With it: a single-use ``state`` in Redis and in a cookie bound to this browser, and a
302 to Meta's dialog. ``GET /connect/callback`` checks both, finishes the login (the one place the web
process talks to Meta), stores each account sealed, enqueues its subscription and backfill, and lands
on the console's accounts page or a plain page. Every failure is a 4xx page saying why; nothing is stored.
"""

from __future__ import annotations

import hmac
import html
import logging
from typing import Any

from flask import Blueprint, Response, current_app, redirect, request
from rq import Queue

from config import accounts, contract, login
from config.rq import QUEUE, SERIALIZER, presets
from config.settings import Settings

bp = Blueprint("connect", __name__)
log = logging.getLogger("igrelay.connect")
COOKIE = "igrelay_connect_state"


def _ctx() -> dict[str, Any]:
    return current_app.extensions["igrelay"]  # type: ignore[no-any-return]


def _page(status: int, title: str, text: str) -> Response:
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )
    return Response(body, status=status, mimetype="text/html", headers={"Cache-Control": "no-store"})


@bp.get("/connect")
def start() -> Response:
    """Send a person holding a valid link to Meta's login dialog."""
    settings, redis = _ctx()["settings"], _ctx()["redis"]
    if settings.login_off:
        return _page(404, "Login flow off", settings.login_off)
    if not login.take_link(redis, request.args.get("link", "")):
        if settings.console_password:
            return redirect("/console/login?next=/console/connect")  # type: ignore[return-value]
        return _page(401, "Link needed", "Open the single-use link `igrelay accounts connect` prints (valid 1 h).")
    state = login.new_state(redis)
    reply: Response = redirect(login.dialog_url(settings, state))  # type: ignore[assignment]
    secure = (settings.public_url or "").startswith("https://")
    options = {"path": "/connect", "secure": secure, "httponly": True, "samesite": "Lax"}
    reply.set_cookie(COOKIE, state, max_age=login.STATE_TTL, **options)  # type: ignore[arg-type]
    return reply


@bp.get("/connect/callback")
def callback() -> Response:
    """Finish the login: check ``state``, exchange the code, store the accounts, start their work."""
    settings, redis = _ctx()["settings"], _ctx()["redis"]
    if settings.login_off:
        return _page(404, "Login flow off", settings.login_off)
    state, cookie = request.args.get("state", ""), request.cookies.get(COOKIE, "")
    fresh = login.take_state(redis, state)
    if not fresh or not hmac.compare_digest(state.encode(), cookie.encode()):
        text = "This login is unknown, expired (10 min) or already used, or was started in another browser."
        return _page(400, "Login refused", text + " Nothing was stored; start again.")
    problem = login.denial(request.args)
    if problem is None and not request.args.get("code"):
        problem = login.Refused("Meta sent no code back. Nothing was stored.")
    if problem is None:
        try:
            found = login.LoginClient(settings).finish(request.args["code"])
        except login.LoginError as exc:
            problem = exc
    if problem is not None:
        log.info("login failed", extra={"reason": type(problem).__name__})
        return _done(_page(problem.status, "Login failed", str(problem)))
    return _done(_store(redis, settings, found))


def _store(redis: Any, settings: Settings, found: list[accounts.Login]) -> Response:
    stored, refused = [], []
    for one in found:
        try:
            accounts.connect(redis, settings, one)
        except accounts.AccountError as exc:
            refused.append(str(exc))
            continue
        stored.append(one)
        Queue(QUEUE, connection=redis, serializer=SERIALIZER).enqueue(
            contract.Jobs.CONNECTED, args=(one.id,), description=f"connected {one.id}", **presets()["periodic"]
        )
        log.info("account connected", extra={"account": one.id})
    if not stored:
        return _page(409, "Nothing connected", " ".join(refused))
    names = ", ".join(f"@{a.username} ({a.id})" for a in stored)
    if settings.console_password and not refused:
        return redirect(f"/console/accounts?connected={stored[0].id}")  # type: ignore[return-value]
    text = f"Connected {names}: subscribing to webhooks and backfilling its history now. " + " ".join(refused)
    return _page(200, "Account connected", text.strip())


def _done(reply: Response) -> Response:
    reply.delete_cookie(COOKIE, path="/connect")
    return reply
