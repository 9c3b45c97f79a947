"""Thin views: verify, store, answer. They never call the Graph API (only ``webhook.connect`` talks to Meta)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Request, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from webhook import meta
from webhook.prometheus import authorized, render
from webhook.store import DeliveryStore, StoreUnavailable

bp = Blueprint("webhook", __name__)
log = logging.getLogger("igrelay.webhook")
_OK = b'{"status":"ok"}'
HANDSHAKES = "igrelay_handshakes_total"
# Seconds a body read may wait for the client's next bytes under gunicorn (Meta sends a delivery at once).
BODY_READ_TIMEOUT = 5.0


def _ctx() -> dict[str, Any]:
    return current_app.extensions["igrelay"]  # type: ignore[no-any-return]


def _answer(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


@bp.get("/webhook")
def handshake() -> Response:
    """Meta's subscription handshake: echo ``hub.challenge`` for the right verify token."""
    ctx = _ctx()
    try:
        challenge = meta.handshake(request.args, ctx["settings"].verify_token)
    except meta.HandshakeError as exc:
        ctx["store"].count("refused", stat=HANDSHAKES)
        log.info("handshake refused", extra={"status": exc.status})
        return _answer(exc.status, str(exc))
    ctx["store"].count("answered", stat=HANDSHAKES)
    log.info("handshake answered")
    response = Response(challenge, status=200, mimetype="text/plain")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.post("/webhook")
def receive() -> Response:
    """Size, signature over the raw bytes, envelope, durable store, then 200."""
    ctx = _ctx()
    store: DeliveryStore = ctx["store"]
    req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not one per use
    try:
        body = _read_body(req, ctx["settings"].max_body_bytes)
        # One environ key: a WSGI server joins repeated headers into one value, which then fails to parse.
        given = req.environ.get("HTTP_X_HUB_SIGNATURE_256")
        index = meta.verify_signature(body, [given] if given is not None else [], ctx["settings"].app_secrets)
        envelope = meta.parse_envelope(body)
        entry_id = store.put(body)
    except RequestEntityTooLarge:
        store.count("too_large")
        return _answer(413, "body too large")
    except TimeoutError:
        store.count("slow_body")
        log.info("delivery refused: body not received in time", extra={"outcome": "slow_body", "status": 408})
        # gunicorn closes the connection after a body read that failed, so the rest of the body is never
        # read as a request (a Connection header set here would be dropped by gunicorn as hop-by-hop).
        return _answer(408, "body not received in time")
    except meta.WebhookError as exc:
        outcome = "bad_signature" if exc.status == 401 else "bad_payload"
        store.count(outcome)
        log.info("delivery refused", extra={"outcome": outcome, "status": exc.status})
        return _answer(exc.status, "invalid signature" if exc.status == 401 else str(exc))
    except StoreUnavailable as exc:
        log.error("delivery not stored: Redis unavailable (%s)", exc, extra={"outcome": "unavailable"})
        response = _answer(503, "temporarily unavailable")
        response.headers["Retry-After"] = "5"
        return response
    # DEBUG: one line per delivery costs a tenth of the request; /metrics counts them at INFO.
    log.debug(
        "delivery stored",
        extra={"delivery": entry_id, "entries": envelope.entries, "secret": index, "bytes": len(body)},
    )
    return Response(_OK, status=200, mimetype="application/json")


def _read_body(req: Request, limit: int) -> bytes:
    """The raw body, or ``RequestEntityTooLarge`` past ``limit`` bytes, chunked bodies too.

    Read straight from the WSGI input (werkzeug's stream wrappers cost more than the read), the
    declared length at most; a chunked body one byte past the limit, to tell it went over.
    """
    length = req.content_length
    stream = req.environ["wsgi.input"]
    sock = req.environ.get("gunicorn.socket")
    if sock is not None:  # each read waits at most this long, so a stalled upload frees its thread
        sock.settimeout(BODY_READ_TIMEOUT)
    if length is not None:
        if length > limit:
            raise RequestEntityTooLarge()
        body = bytes(stream.read(length)) if length else b""
        if len(body) != length:
            raise meta.PayloadError("body shorter than its Content-Length")
        return body
    if not req.environ.get("wsgi.input_terminated"):
        return b""  # no length and a server that does not end the stream: nothing safe to read
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return bytes(body)


@bp.get("/healthz")
def healthz() -> Response:
    """Alive while the process runs."""
    return _answer(200, "ok")


@bp.get("/readyz")
def readyz() -> Response:
    """Ready when Redis answers."""
    store: DeliveryStore = _ctx()["store"]
    return _answer(200, "ready") if store.ping() else _answer(503, "redis unavailable")


@bp.get("/metrics")
def prometheus() -> Response:
    """igrelay's stats in Prometheus text exposition (behind ``IGRELAY_METRICS_TOKEN`` when set)."""
    if not authorized(_ctx()["settings"].metrics_token, request.headers.get("Authorization")):
        response = _answer(401, "unauthorized")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return Response(render(_ctx()["redis"]), mimetype="text/plain; version=0.0.4; charset=utf-8")
