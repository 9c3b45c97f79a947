"""``POST /webhook``, Meta's deliveries, as a plain WSGI handler in front of Flask.

Every other request (the GET handshake, health, metrics, the console) goes on to Flask. This one is
the hot path, and Flask's per-request machinery (request and app contexts, URL matching, session,
response object) costs about as much CPU as everything igrelay does for a delivery: measured on 2
cores under gunicorn, the web answered 72% of a bare Flask app's rate through a Flask view and about
93% through this handler. A delivery is checked in this order: size, signature over the raw bytes,
envelope, durable store; then 200. An unexpected error is logged (never the body) and answered 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wsgi import get_content_length

from config.settings import Settings
from webhook import meta
from webhook.store import DeliveryStore, StoreUnavailable

log = logging.getLogger("igrelay.webhook")
PATH = "/webhook"
# Seconds a body read may wait for the client's next bytes under gunicorn (Meta sends a delivery at once).
BODY_READ_TIMEOUT = 5.0

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]
_JSON = [("Content-Type", "application/json")]
_TEXT = [("Content-Type", "text/plain; charset=utf-8")]
_OK = b'{"status":"ok"}'


class TooLarge(Exception):
    """The body is over the configured limit (413)."""


class WebhookReceiver:
    """WSGI middleware: answers ``POST /webhook`` itself, hands anything else to ``app``."""

    def __init__(self, app: WSGIApp, settings: Settings, store: DeliveryStore) -> None:
        self.app = app
        self.settings = settings
        self.store = store

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        try:
            status, headers, body = self.receive(environ)
        except Exception:  # what Flask would do with a view's error: log it, answer 500, keep serving
            log.exception("delivery not stored: unexpected error", extra={"outcome": "error"})
            status, headers, body = _text("500 Internal Server Error", "internal error")
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def receive(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        """The answer to one delivery: status line, headers and body."""
        store = self.store
        settings = self.settings
        try:
            body = read_body(environ, settings.max_body_bytes)
            # One environ key: a WSGI server joins repeated headers into one value, which then fails to parse.
            given = environ.get("HTTP_X_HUB_SIGNATURE_256")
            index = meta.verify_signature(body, [given] if given is not None else [], settings.app_secrets)
            envelope = meta.parse_envelope(body)
            entry_id = store.put(body)
        except TooLarge:
            store.count("too_large")
            return _text("413 Request Entity Too Large", "body too large")
        except TimeoutError:
            store.count("slow_body")
            log.info("delivery refused: body not received in time", extra={"outcome": "slow_body", "status": 408})
            # gunicorn closes the connection after a body read that failed, so the rest of the body is never
            # read as a request (a Connection header set here would be dropped by gunicorn as hop-by-hop).
            return _text("408 Request Timeout", "body not received in time")
        except meta.WebhookError as exc:
            outcome = "bad_signature" if exc.status == 401 else "bad_payload"
            store.count(outcome)
            log.info("delivery refused", extra={"outcome": outcome, "status": exc.status})
            if exc.status == 401:
                return _text("401 Unauthorized", "invalid signature")
            return _text("400 Bad Request", str(exc))
        except StoreUnavailable as exc:
            log.error("delivery not stored: Redis unavailable (%s)", exc, extra={"outcome": "unavailable"})
            status, headers, text = _text("503 Service Unavailable", "temporarily unavailable")
            return status, [*headers, ("Retry-After", "5")], text
        # DEBUG: one line per delivery costs a tenth of the request; /metrics counts them at INFO.
        log.debug(
            "delivery stored",
            extra={"delivery": entry_id, "entries": envelope.entries, "secret": index, "bytes": len(body)},
        )
        return "200 OK", _JSON, _OK


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The raw body, or ``TooLarge`` past ``limit`` bytes, chunked bodies too.

    Read straight from the WSGI input, the declared length at most; a chunked body one byte past
    the limit, to tell it went over.
    """
    length = get_content_length(environ)
    stream = environ["wsgi.input"]
    sock = environ.get("gunicorn.socket")
    if sock is not None:  # each read waits at most this long, so a stalled upload frees its thread
        sock.settimeout(BODY_READ_TIMEOUT)
    if length is not None:
        if length > limit:
            raise TooLarge()
        body = bytes(stream.read(length)) if length else b""
        if len(body) != length:
            raise meta.PayloadError("body shorter than its Content-Length")
        return body
    if not environ.get("wsgi.input_terminated"):
        return b""  # no length and a server that does not end the stream: nothing safe to read
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise TooLarge()
    return bytes(body)


def _text(status: str, message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    return status, _TEXT, (message + "\n").encode()
