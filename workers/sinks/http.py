"""``http://…`` / ``https://…``: POST each record as JSON, signed the Standard Webhooks way.

Headers: ``webhook-id`` (the record id, the same on every retry), ``webhook-timestamp`` and, when
``IGRELAY_SINK_SECRET`` (or the TOML option ``secret``) holds one or more space-separated
``whsec_`` secrets, ``webhook-signature`` with one ``v1,`` signature per secret (for rotation).
https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md

One batch is sent concurrently (threads over one Session); connections go through
:mod:`workers.sinks._netguard` unless ``IGRELAY_SINK_ALLOW_PRIVATE`` or ``allow_private = true``.
Failure policy: raise. 2xx delivered; 3xx (redirects are not followed) and other statuses retried;
429/503 retried after ``Retry-After``; 410 raises ``SinkGone`` (the sink is disabled).
Options: ``concurrency`` (16), ``connect_timeout`` (3.05), ``read_timeout`` (15), ``batch_seconds`` (60).
Shown as scheme, host and port only (a path can be a secret); ``igrelay check`` resolves the host
through the SSRF guard and sends nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from config.settings import ConfigError, Settings
from workers.sinks import Finding, PermanentSinkError, Record, Sink, SinkError, SinkGone
from workers.sinks import _netguard as netguard

OK, FAILED, UNKNOWN = "ok", "failed", "unknown"  # UNKNOWN: the request went out, the answer did not come
Outcome = tuple[str, SinkError | None]
MAX_RETRY_AFTER = 86400.0


def signing_keys(raw: str | None) -> list[bytes]:
    """Keys from space-separated ``whsec_<base64>`` secrets."""
    keys = []
    for secret in (raw or "").split():
        try:
            keys.append(base64.b64decode(secret.removeprefix("whsec_"), validate=True))
        except (binascii.Error, ValueError):
            raise ConfigError("IGRELAY_SINK_SECRET: expected whsec_<base64> secrets separated by spaces") from None
    return keys


def signature(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` per key."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(k, signed, hashlib.sha256).digest()).decode() for k in keys)


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), capped at a day."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    return min(max(seconds, 1.0), MAX_RETRY_AFTER)


def status_error(resp: requests.Response, label: str) -> SinkError | None:
    """The error a response status means under the Standard Webhooks etiquette (``None`` for 2xx)."""
    code = resp.status_code
    if 200 <= code < 300:
        return None
    if code == 410:
        return SinkGone(f"{label}: the receiver answered 410 Gone; the sink is disabled")
    if 300 <= code < 400:
        return SinkError(f"{label}: the receiver answered {code} (redirects are not followed)")
    wait_s = retry_after(resp.headers.get("Retry-After")) if code in (429, 503) else None
    return SinkError(f"{label}: the receiver answered {code}", retry_after=wait_s)


def combine(label: str, records: Sequence[Record], outcomes: Sequence[Outcome], at_most_once: bool) -> None:
    """Raise one ``SinkError`` for a batch with failures; its ``done`` lists ids not to send again."""
    errors = [e for status, e in outcomes if e is not None]
    if not errors and all(status == OK for status, _ in outcomes):
        return
    sent = (OK, UNKNOWN) if at_most_once else (OK,)
    done = [r["id"] for r, (status, _) in zip(records, outcomes, strict=True) if status in sent]
    gone = next((e for e in errors if isinstance(e, SinkGone)), None)
    permanent = next((e for e in errors if isinstance(e, PermanentSinkError)), None)
    worst = gone or permanent or (errors[0] if errors else SinkError(f"{label}: batch time budget spent"))
    wait_s = max((e.retry_after for e in errors if e.retry_after), default=None)
    failed = len(records) - len(done)
    raise type(worst)(f"{worst} ({failed} of {len(records)} records not delivered)", retry_after=wait_s, done=done)


def _reason(exc: requests.RequestException) -> object:
    """urllib3's reason under a requests error (``None`` when there is none)."""
    return getattr(exc.args[0], "reason", None) if exc.args else None


def _unsent(exc: requests.RequestException) -> bool:
    """True when the connection was never made (a name that does not resolve too), so the receiver
    cannot have seen the request."""
    return isinstance(_reason(exc), (NewConnectionError, ConnectTimeoutError))


def _abandon(future: Future[Outcome]) -> Outcome:
    """A request still queued when the batch budget ran out is not sent; a running one may be."""
    return (FAILED, None) if future.cancel() else (UNKNOWN, None)


class HttpSink(Sink):
    """POSTs each record to a webhook receiver."""

    schemes: ClassVar[tuple[str, ...]] = ("http", "https")
    label = "http sink"
    default_concurrency = 16
    signed = True

    def __init__(self, url: str, options: Mapping[str, Any], settings: Settings) -> None:
        super().__init__(url, options, settings)
        opts = self.options
        self.keys = signing_keys(opts.get("secret") or self.settings.sink_secret) if self.signed else []
        self.timeout = (float(opts.get("connect_timeout", 3.05)), float(opts.get("read_timeout", 15)))
        self.concurrency = max(1, int(opts.get("concurrency", self.default_concurrency)))
        self.budget = float(opts.get("batch_seconds", 60))
        # The one place the SSRF guard is switched off: sending and ``probe`` both follow it.
        self.allow_private = self.settings.sink_allow_private or bool(opts.get("allow_private"))
        self.session = netguard.session(self.allow_private, self.concurrency)
        self._pool: ThreadPoolExecutor | None = None

    def endpoint(self) -> str:
        """Where requests go."""
        return self.url

    def request(self, record: Record) -> tuple[bytes, dict[str, str]]:
        """The body and headers for one record."""
        body = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str).encode()
        msg_id, ts = str(record["id"]), int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": "igrelay",
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
        }
        if self.keys:
            headers["webhook-signature"] = signature(self.keys, msg_id, ts, body)
        return body, headers

    def classify(self, resp: requests.Response) -> SinkError | None:
        """The error a response means (``None`` for delivered)."""
        return status_error(resp, self.label)

    def post(self, record: Record) -> Outcome:
        """Send one record; never raises for network or status problems."""
        if self.claim is not None and not self.claim(str(record["id"])):
            return OK, None  # already sent (or being sent) by an earlier attempt
        body, headers = self.request(record)
        try:
            resp = self.session.post(
                self.endpoint(), data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except netguard.BlockedAddress as exc:
            return FAILED, exc
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as exc:
            return FAILED, PermanentSinkError(f"{self.label}: {type(exc).__name__}")
        except requests.RequestException as exc:  # the request may have reached the receiver
            dns = " (name does not resolve)" if isinstance(_reason(exc), NameResolutionError) else ""
            return (FAILED if _unsent(exc) else UNKNOWN), SinkError(f"{self.label}: {type(exc).__name__}{dns}")
        with resp:
            error = self.classify(resp)
        return (OK if error is None else FAILED), error

    def send(self, records: Sequence[Record]) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="igrelay-sink")
        futures = [self._pool.submit(self.post, r) for r in records]
        done, _ = wait(futures, timeout=self.budget, return_when=FIRST_EXCEPTION)
        outcomes = [f.result() if f in done else _abandon(f) for f in futures]
        combine(self.label, records, outcomes, self.at_most_once)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self.session.close()

    def probe(self) -> list[Finding]:
        """Resolve the destination through the SSRF guard (unless it is off); nothing is sent."""
        if not self.allow_private:
            parts = urlsplit(self.endpoint())
            try:
                netguard.checked_addresses(parts.hostname or "", parts.port or (80 if parts.scheme == "http" else 443))
            except netguard.BlockedAddress:
                fix = "use a public host, or set IGRELAY_SINK_ALLOW_PRIVATE=true"
                return [Finding("problem", "its host is a private or loopback address", fix)]
        return [Finding("ok", "reachable")]

    @classmethod
    def redact(cls, url: str) -> str:
        """Scheme, host and port: the path and the user part can be secrets."""
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}" + ("/…" if parts.path.strip("/") else "")

    @classmethod
    def secrets(cls, url: str, options: Mapping[str, Any]) -> list[str]:
        """The URL, its password and the ``secret`` option's signing secrets."""
        return [*super().secrets(url, options), *str(options.get("secret") or "").split()]
