"""``slack://hooks.slack.com/services/…``: a readable message per record to a Slack incoming webhook.

The URL is a bearer secret: it is never logged or put in an error. Slack is not idempotent, so
the sink is at-most-once: the delivery layer claims each record id in Redis before the post, and
a post whose answer was lost keeps its claim, so a retry never posts twice. Posts go one at a
time (Slack allows about one message a second per channel) through the SSRF guard.
Text an Instagram user wrote (comments, mentions, usernames) goes as a Block Kit ``plain_text``
object, so ``*bold*``, code blocks and links in it never render, and link unfurling is off.
Failure policy: raise. 429 retried after ``Retry-After``; 404/410 (hook removed, channel archived)
disable the sink; other 4xx are permanent; 5xx and network errors are retried.
Options: ``endpoint`` (override the https URL, e.g. a fake Slack on loopback), ``concurrency`` (1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from config.settings import Settings
from workers.sinks import PermanentSinkError, Record, SinkError, SinkGone
from workers.sinks.http import HttpSink, status_error

MAX_TEXT = 3000  # a section block's text limit: https://api.slack.com/reference/block-kit/blocks#section


def _esc(text: Any) -> str:
    """Slack mrkdwn escaping of ``&``, ``<`` and ``>``."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _metrics(metrics: Mapping[str, Any]) -> str:
    parts = [
        f"{_esc(k).replace('_', ' ')} *{v:,}*" if isinstance(v, (int, float)) else f"{_esc(k)} *{_esc(v)}*"
        for k, v in sorted(metrics.items())
    ]
    return " · ".join(parts) or "no metrics yet"


def target(url: str, options: Mapping[str, Any]) -> str:
    """The https URL posts go to: the ``endpoint`` option, else the ``slack://`` URL as https."""
    parts = urlsplit(url)
    return str(options.get("endpoint") or f"https://{parts.netloc}{parts.path}")


def message(record: Record) -> str:
    """The text Slack shows for ``record``."""
    kind, account = record.get("kind"), _esc(record.get("account_id", "?"))
    if kind == "webhook_event":
        event = record.get("event") or {}
        author = (event.get("from") or {}).get("username") or (event.get("from") or {}).get("id") or "someone"
        what = {"comments": "New comment", "live_comments": "New live comment", "mentions": "New mention"}
        field = str(event.get("field", "event"))
        head = f"{what.get(field, 'New ' + _esc(field))} from @{_esc(author)}"
        where = f" on media {_esc(event['media_id'])}" if event.get("media_id") else ""
        text = f": “{_esc(event['text'])}”" if event.get("text") else ""
        return f"{head}{where} (account {account}){text}"
    metrics = _metrics(record.get("metrics") or {})
    if kind == "account_insights" and record.get("timeframe"):  # demographics: breakdowns only
        shown = ", ".join(_esc(m) for m in sorted(record.get("breakdowns") or {})) or "none yet"
        return f"Account {account} audience ({_esc(record['timeframe'])}): {shown}"
    if kind == "account_insights":
        return f"Account {account} insights for {_esc(record.get('day', '?'))}: {metrics}"
    media = f"media {_esc(record.get('media_id', '?'))}"
    link = f"<{_esc(record['permalink'])}|{media}>" if record.get("permalink") else media
    product = _esc(record.get("media_product_type") or "media")
    return f"Instagram {product} insights for {link} (account {account}): {metrics}"


def payload(record: Record) -> dict[str, Any]:
    """The message for ``record``: user-written text only ever as plain text, nothing unfurled.

    https://api.slack.com/reference/block-kit/composition-objects#text"""
    text = message(record)
    user_written = record.get("kind") == "webhook_event"
    kind = "plain_text" if user_written else "mrkdwn"  # insights hold only igrelay's and Graph's words
    block: dict[str, Any] = {"type": kind, "text": text[:MAX_TEXT]}
    if user_written:
        block["emoji"] = False  # :name: in a comment stays text too
    return {
        "text": text,  # the notification's fallback, unformatted since mrkdwn is off for it
        "mrkdwn": False,
        "blocks": [{"type": "section", "text": block}],
        "unfurl_links": False,  # https://api.slack.com/reference/messaging/link-unfurling
        "unfurl_media": False,
    }


class SlackSink(HttpSink):
    """Posts one message per record to Slack."""

    schemes = ("slack",)
    label = "slack sink"
    at_most_once = True
    default_concurrency = 1
    signed = False

    def __init__(self, url: str, options: Mapping[str, Any], settings: Settings) -> None:
        super().__init__(url, options, settings)
        self.target = target(url, options)

    def endpoint(self) -> str:
        return self.target

    def request(self, record: Record) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(payload(record), ensure_ascii=False).encode()
        return body, {"content-type": "application/json", "user-agent": "igrelay"}

    def classify(self, resp: requests.Response) -> SinkError | None:
        """Slack's answers: https://api.slack.com/messaging/webhooks#handling_errors"""
        if resp.status_code in (404, 410):
            return SinkGone(f"{self.label}: Slack answered {resp.status_code}; the sink is disabled")
        if 400 <= resp.status_code < 500 and resp.status_code != 429:
            return PermanentSinkError(f"{self.label}: Slack answered {resp.status_code}")
        return status_error(resp, self.label)

    @classmethod
    def secrets(cls, url: str, options: Mapping[str, Any]) -> list[str]:
        """The ``slack://`` URL, the https URL it posts to, and the hook path they share."""
        return [*super().secrets(url, options), target(url, options), urlsplit(url).path]
