"""Meta's webhook protocol without I/O: handshake, signature, envelope. Bytes and mappings in,
values or exceptions out; no Flask here. The envelope's shape is checked by ``config.envelope``,
which the worker walks with the same rules.

Exceptions, mapped to HTTP status at one edge (``webhook.views``)::

    WebhookError
     ├── HandshakeError   400 (parameter missing) or 403 (wrong token or mode)
     ├── SignatureError   401 (missing, malformed or not matching any secret)
     └── PayloadError     400 (signed, but not the JSON envelope)
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from config.envelope import EnvelopeError, envelopes

_SIG = re.compile(r"sha256=([0-9a-f]{64})")


class WebhookError(Exception):
    """Base of this module's errors; ``status`` is the HTTP answer."""

    status = 400


class HandshakeError(WebhookError):
    """The GET subscription handshake cannot be answered."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class SignatureError(WebhookError):
    """``X-Hub-Signature-256`` is missing, malformed or matches no configured secret."""

    status = 401


class PayloadError(WebhookError):
    """A signed body that is not a JSON object with ``object`` and an ``entry`` list."""

    status = 400


def handshake(args: Mapping[str, str], verify_token: str) -> str:
    """The challenge to echo for a valid subscription request.

    https://developers.facebook.com/docs/graph-api/webhooks/getting-started#verification-requests
    """
    mode, token, challenge = (args.get(k) for k in ("hub.mode", "hub.verify_token", "hub.challenge"))
    if mode is None or token is None or challenge is None:
        raise HandshakeError("hub.mode, hub.verify_token and hub.challenge are required", 400)
    token_ok = hmac.compare_digest(token.encode(), verify_token.encode())
    if mode != "subscribe" or not token_ok:
        raise HandshakeError("verification refused", 403)
    return challenge


def verify_signature(body: bytes, headers: Sequence[str], secrets: Sequence[str]) -> int:
    """Index of the secret whose HMAC-SHA256 of ``body`` matches the one header given.

    Meta signs the payload as sent, with non-ASCII escaped as ``\\uXXXX``; when a proxy
    re-encoded it to raw UTF-8 we also try the escaped form.
    https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads
    """
    if len(headers) != 1:
        raise SignatureError("expected exactly one X-Hub-Signature-256 header")
    match = _SIG.fullmatch(headers[0].strip())
    if not match or not secrets:
        raise SignatureError("malformed X-Hub-Signature-256")
    given = match.group(1).encode()
    bodies = [body] if body.isascii() else [body, _escape_non_ascii(body)]
    for candidate in bodies:
        for index, secret in enumerate(secrets):
            digest = hmac.new(secret.encode(), candidate, hashlib.sha256).hexdigest().encode()
            if hmac.compare_digest(digest, given):
                return index
    raise SignatureError("signature does not match")


def _escape_non_ascii(body: bytes) -> bytes:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return body
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if code < 0x80:
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    return "".join(out).encode("ascii")


@dataclass(frozen=True)
class Envelope:
    """What the web checks before storing: the object type(s) and how many entries."""

    objects: tuple[str, ...]
    entries: int


def parse_envelope(body: bytes) -> Envelope:
    """Check ``body`` is ``{"object": str, "entry": [...]}`` or a JSON array of those."""
    try:
        items = envelopes(body)
    except EnvelopeError as exc:
        raise PayloadError(str(exc)) from exc
    return Envelope(tuple(item["object"] for item in items), sum(len(item["entry"]) for item in items))
