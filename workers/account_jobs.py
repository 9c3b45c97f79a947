"""RQ entry points for accounts: after a login, a subscription, a backfill step (thin, JSON-safe arguments)."""

from __future__ import annotations

import logging

from config import accounts
from workers import backfill, context, subscriptions
from workers.graph import GraphError
from workers.graph_client import open_client
from workers.jobs import counted

log = logging.getLogger("igrelay.accounts")


@counted
def connected(account: str) -> list[str]:
    """A newly connected account: subscribe it to webhook fields and start its backfill."""
    ctx = context.current()
    backfill.start(ctx.redis, ctx.settings, account)
    return subscribe_account(account)


@counted
def subscribe_account(account: str) -> list[str]:
    """Subscribe ``account`` to the webhook fields; returns them (RQ retries on a Graph failure)."""
    ctx = context.current()
    fields = list(subscriptions.fields_for(ctx.settings))
    with open_client(ctx.settings, ctx.redis, 1, purpose="subscribe") as client:
        where = subscriptions.target(client, ctx.settings, account)
        if where.missing:
            log.error("account not subscribed", extra={"account": account, "error": where.missing})
            return []
        try:
            subscriptions.subscribe(client, where, fields)
        except GraphError as exc:
            log.warning("subscription failed", extra={"account": account, "error": str(exc)})
            raise
    accounts.note_subscribed(ctx.redis, account, fields)
    log.info("account subscribed", extra={"account": account, "fields": fields})
    return fields


@counted
def start_backfill(account: str, days: int = backfill.DEFAULT_DAYS) -> None:
    """Begin ``account``'s backfill of the last ``days`` days."""
    ctx = context.current()
    backfill.start(ctx.redis, ctx.settings, account, days)


@counted
def backfill_step(account: str) -> bool:
    """One budgeted step of ``account``'s backfill; the step enqueues the next one itself."""
    ctx = context.current()
    return backfill.step(ctx.redis, ctx.settings, account)
