"""Keys derived from ``IGRELAY_SECRET_KEY`` and the sealed box every stored token goes in.

``IGRELAY_SECRET_KEY`` is one high-entropy string or several comma-separated: the first encrypts and
signs, all decrypt (rotation). Each use gets its own key, derived with HKDF-SHA256 from the secret and
the purpose's name (``TOKENS``, ``CONSOLE_SESSION``), so a key leaked from one use opens nothing else.
A sealed token is a Fernet ciphertext (AES-128-CBC + HMAC-SHA256) of ``{"a": account, "t": token}``:
reading it checks the account, so one account's valid ciphertext put under another is refused.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from config.settings import Settings

TOKENS = "tokens"
CONSOLE_SESSION = "console-session"
_SALT = b"igrelay key derivation v1"
MISSING = "IGRELAY_SECRET_KEY is not set: tokens cannot be stored encrypted, so refreshed tokens are not kept"


class KeyMissing(RuntimeError):
    """``IGRELAY_SECRET_KEY`` is not set, so nothing that stores a token may run."""


class TokenRefused(ValueError):
    """A stored token that does not open with our keys, or belongs to another account."""


def _secrets(source: Settings | Sequence[str] | str) -> list[str]:
    if isinstance(source, Settings):
        return list(source.secret_keys)
    return [source] if isinstance(source, str) else list(source)


def derive(source: Settings | Sequence[str] | str, purpose: str) -> bytes:
    """32 raw key bytes for ``purpose`` from the current (first) secret; ``KeyMissing`` without one."""
    return derive_all(source, purpose)[0]


def derive_all(source: Settings | Sequence[str] | str, purpose: str) -> list[bytes]:
    """32 raw key bytes for ``purpose`` from each secret, current first (verify or decrypt with any)."""
    secrets = _secrets(source)
    if not secrets:
        raise KeyMissing(MISSING)
    return [_hkdf(secret, purpose) for secret in secrets]


def _hkdf(secret: str, purpose: str) -> bytes:
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=b"igrelay:" + purpose.encode())
    return kdf.derive(secret.encode())


def fernets(source: Settings | Sequence[str] | str, purpose: str) -> list[Fernet]:
    """One Fernet per secret for ``purpose``, current first."""
    return [Fernet(base64.urlsafe_b64encode(key)) for key in derive_all(source, purpose)]


class TokenBox:
    """Seals and opens tokens bound to their account."""

    def __init__(self, source: Settings | Sequence[str] | str) -> None:
        self._current, *self._older = fernets(source, TOKENS)
        self._all = MultiFernet([self._current, *self._older])

    @classmethod
    def of(cls, settings: Settings) -> TokenBox | None:
        """The box for ``settings``, or None without ``IGRELAY_SECRET_KEY``."""
        return cls(settings) if settings.secret_keys else None

    def seal(self, account: str, token: str) -> str:
        """The ciphertext of ``token`` bound to ``account``, under the current key."""
        plain = json.dumps({"a": account, "t": token}, separators=(",", ":")).encode()
        return self._current.encrypt(plain).decode()

    def open(self, account: str, sealed: str | bytes) -> tuple[str, bool]:
        """``(token, stale)``: stale when sealed under an older key (seal it again); ``TokenRefused`` otherwise."""
        raw = sealed.encode() if isinstance(sealed, str) else sealed
        stale = False
        try:
            plain = self._current.decrypt(raw)
        except InvalidToken:
            try:
                plain, stale = self._all.decrypt(raw), True
            except InvalidToken:
                raise TokenRefused("the stored token does not open with IGRELAY_SECRET_KEY") from None
        value = json.loads(plain)
        if not isinstance(value, dict) or value.get("a") != account or not isinstance(value.get("t"), str):
            raise TokenRefused(f"the stored token of account {account} was sealed for another account")
        return value["t"], stale


_said: list[bool] = []


def say_missing(logger: logging.Logger) -> None:
    """Log once per process why no token is stored."""
    if not _said:
        _said.append(True)
        logger.warning(MISSING + "; set it (the same value) on web and worker")
