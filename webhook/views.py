"""Thin views: the handshake, health and metrics (``webhook.receiver`` takes the deliveries). They
never call the Graph API (only ``webhook.connect`` talks to Meta)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, request

from config import sinkconf
from webhook import meta
from webhook.prometheus import authorized, render
from webhook.store import DeliveryStore

bp = Blueprint("webhook", __name__)
log = logging.getLogger("igrelay.webhook")
HANDSHAKES = "igrelay_handshakes_total"


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
    ctx = _ctx()
    if not authorized(ctx["settings"].metrics_token, request.headers.get("Authorization")):
        response = _answer(401, "unauthorized")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    sinks = list(sinkconf.configured(ctx["settings"]))
    return Response(render(ctx["redis"], sinks), mimetype="text/plain; version=0.0.4; charset=utf-8")
