"""The HTTP plumbing under ``Sandbox``: a threaded keep-alive server that hands each request to
an ``answer(method, path, query, form, authorization)`` callable and writes back its JSON (or, for a
``str`` body, that text with the ``Content-Type`` the answer's headers name)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Answer = Callable[[str, str, dict[str, str], dict[str, str], str | None], tuple[int, Any, dict[str, str]]]


def bearer_token(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <t>`` (or Meta's older ``OAuth <t>``)."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() not in ("bearer", "oauth"):
        return None
    return value.strip() or None


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers its open connections so ``close_connections`` can end them."""

    daemon_threads = True
    request_queue_size = 128  # the default 5 drops connections under a benchmark's burst

    def __init__(self, address: tuple[str, int], answer: Answer) -> None:
        self.answer = answer
        self.open: set[socket.socket] = set()
        self.open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.open_lock:
            self.open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.open_lock:
            self.open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake keep-alive handlers so their threads close their sockets and end."""
        with self.open_lock:
            for sock in self.open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: Server

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        status, body, headers = self.server.answer(
            self.command, url.path, query, self._form(), self.headers.get("Authorization")
        )
        headers = dict(headers)
        content_type = headers.pop("Content-Type", "application/json; charset=UTF-8")
        payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client gave up (e.g. its timeout fired)
            self.close_connection = True

    do_POST = do_DELETE = do_GET

    def _form(self) -> dict[str, str]:
        """POST parameters, form-encoded or JSON, as Meta accepts them."""
        size = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(size) if size else b""
        if self.headers.get_content_type() == "application/json" and raw:
            try:
                loaded = json.loads(raw)
            except ValueError:
                return {}
            if not isinstance(loaded, dict):
                return {}
            return {k: ",".join(v) if isinstance(v, list) else str(v) for k, v in loaded.items()}
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the sandbox's traffic is in ``Sandbox.requests_log``."""
