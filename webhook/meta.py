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
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    macs = _macs(secrets, [body])
    if not body.isascii() and (escaped := _escape_non_ascii(body)) is not None:
        macs += _macs(secrets, escaped)
    for index, mac in enumerate(macs):
        if hmac.compare_digest(mac.hexdigest().encode(), given):
            return index % len(secrets)
    raise SignatureError("signature does not match")


def _macs(secrets: Sequence[str], chunks: Iterable[bytes]) -> list[hmac.HMAC]:
    """One HMAC-SHA256 per secret over the concatenated ``chunks``."""
    macs = [hmac.new(secret.encode(), digestmod=hashlib.sha256) for secret in secrets]
    for chunk in chunks:
        for mac in macs:
            mac.update(chunk)
    return macs


# Bytes ``json.dumps`` escapes besides non-ASCII ones: quote, backslash, C0 controls and DEL.
_JSON_ESCAPED = b'"\\' + bytes(range(0x20)) + b"\x7f"
_NOT_JSON_ESCAPED = bytes(b for b in range(256) if b not in _JSON_ESCAPED)
# Of those, the ones JSON text holds raw (inside strings or as whitespace), and their escapes to undo.
_RAW_IN_JSON = {b'"': b'\\"', b"\t": b"\\t", b"\n": b"\\n", b"\r": b"\\r", b"\x7f": b"\\u007f"}
_NOT_JSON_TEXT = b"".join(_RAW_IN_JSON) + b"\\"
_MARK = b"\x80"  # stands for an escaped backslash while the others are undone; dumps' output is ASCII
_CHUNK = 1 << 16  # characters escaped at a time: the escaped chunk is hashed while still in the CPU's cache


def _escape_non_ascii(body: bytes) -> Iterator[bytes] | None:
    """``body`` with non-ASCII as ``\\uxxxx`` (surrogate pairs past the BMP) in chunks, or ``None`` if not JSON text."""
    # Runs before any secret is known, so only C-speed passes (a loop per character let a forged 4 MiB
    # body take seconds): json.dumps escapes, then one replace per kind of ASCII escape it added undoes those.
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    present = body.translate(None, _NOT_JSON_ESCAPED)  # the bytes dumps escapes, in one C pass
    if present.translate(None, _NOT_JSON_TEXT):
        return None  # a raw control character other than whitespace: not JSON
    undo = [(escape, raw) for raw, escape in _RAW_IN_JSON.items() if raw in present]
    return _escaped_chunks(text, b"\\" in present, undo)


def _escaped_chunks(text: str, backslash: bool, undo: list[tuple[bytes, bytes]]) -> Iterator[bytes]:
    for start in range(0, len(text), _CHUNK):
        out = json.dumps(text[start : start + _CHUNK]).encode("ascii")[1:-1]
        if backslash:
            out = out.replace(b"\\\\", _MARK)  # first, so every backslash left starts an escape
        for escape, raw in undo:
            out = out.replace(escape, raw)
        yield out.replace(_MARK, b"\\") if backslash else out


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
