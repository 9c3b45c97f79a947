"""The console in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

Skipped when Chromium or Playwright is missing, except under ``CI``, where that is a failure
(``bin/test`` installs both). With ``IGRELAY_CONSOLE_SCREENSHOTS=DIR`` the test also saves the
screenshots the README shows.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from config import contract, stats
from tests.conftest import make_settings, run_worker
from tests.support.console import ACCOUNT, MEDIA, PASSWORD, console_env, insights, store
from webhook import create_app

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("IGRELAY_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
RECORDS = 12


def _need_browser() -> Any:
    """Playwright's sync API, or skip (fail under CI) naming what is missing."""
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("playwright (pip install playwright)")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        missing.append(f"chromium at {CHROMIUM} (apt-get install chromium)")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return sync_playwright


@pytest.fixture
def server(tmp_path, redis) -> Iterator[tuple[str, Any]]:
    """The web app with the console on, served on a free port of 127.0.0.1 from a thread."""
    settings = make_settings(tmp_path, **console_env(tmp_path))
    httpd = make_server("127.0.0.1", 0, create_app(settings, redis=redis), threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", settings
    finally:
        httpd.shutdown()


@pytest.fixture
def page(server) -> Iterator[Any]:
    """A fresh Chromium page (own profile) that records every URL it requests."""
    sync_playwright = _need_browser()
    profile = tempfile.mkdtemp(prefix="igrelay-chromium-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=FLAGS, headless=True, viewport={"width": 1100, "height": 900}
        )
        tab = context.pages[0] if context.pages else context.new_page()
        tab.requested = []  # type: ignore[attr-defined]
        tab.on("request", lambda r: tab.requested.append(r.url))  # type: ignore[attr-defined]
        try:
            yield tab
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def seed(settings: Any, redis: Any) -> None:
    """History in the SQLite sink, a minute series for the overview, and one dead letter."""
    from workers import records as R

    store(settings, insights(RECORDS))
    store(settings, insights(4, media="18000000000000002", start=None))
    days = [
        R.account_insights(ACCOUNT, f"2026-01-{d:02d}", {"reach": 900 + 40 * d, "views": 2000 + 90 * d}, {}, "daily")
        for d in range(1, 15)
    ]
    store(settings, days)
    now, deliveries, made = int(time.time() // 60), 0, 0
    for i, minute in enumerate(range(now - 60, now + 1)):
        redis.hset(contract.STATS_MINUTES, minute, f"{deliveries} {made}")
        deliveries, made = deliveries + 40 + round(25 * math.sin(i / 6)), made + 12 + i % 7
    redis.hset(contract.STATS, mapping={stats.DELIVERIES: deliveries, stats.field(stats.RECORDS, kind="x"): made})
    from workers import delivery, sinks
    from workers.sinks import _ledger

    name = next(iter(sinks.configured(settings)))
    _ledger.disable(redis, name, time.time())
    event = {"kind": "webhook_event", "id": "e" * 32, "account_id": ACCOUNT, "media_id": MEDIA}
    event.update(captured_at="2026-01-06T09:00:00Z", trigger="comments", event={"field": "comments", "text": "hi"})
    delivery.emit(redis, settings, [event])
    run_worker(settings)  # the sink is disabled: the delivery becomes a dead letter at once


def log_in(page: Any, base: str) -> None:
    page.goto(base + "/console")
    assert "/console/login" in page.url
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/console")


def shoot(page: Any, name: str) -> None:
    target = os.environ.get("IGRELAY_CONSOLE_SCREENSHOTS")
    if target:
        page.screenshot(path=str(Path(target) / name), full_page=True)


def test_console_in_a_browser(server, page, redis) -> None:
    base, settings = server
    seed(settings, redis)
    log_in(page, base)
    assert page.get_by_role("heading", name="Overview").is_visible()
    assert page.locator("[data-stat=failed]").inner_text() == "1"
    page.locator("#live[data-updated]").wait_for(state="attached", timeout=15000)  # refreshed in place
    shoot(page, "console-overview.png")

    page.get_by_role("link", name="Accounts").click()
    page.get_by_role("link", name=ACCOUNT).first.click()
    assert page.get_by_role("heading", name=f"Account {ACCOUNT}").is_visible()
    page.get_by_role("link", name=MEDIA).click()
    chart = page.locator('svg[data-chart="views"]')
    assert chart.locator("circle.pt").count() == RECORDS  # one point per stored record
    shoot(page, "console-media.png")

    page.goto(base + "/console/activity")
    page.get_by_label("Kind").select_option("account_insights")
    page.get_by_role("button", name="Filter").click()
    kinds = page.locator("tr[data-kind]").evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert kinds and set(kinds) == {"account_insights"}

    page.goto(base + "/console/failures")
    assert page.locator("tr[data-job]").count() == 1
    shoot(page, "console-failures.png")
    page.get_by_role("button", name="Replay job").click()
    assert "1 dead letter requeued" in page.locator(".notice[role=status]").inner_text()
    run_worker(settings)
    page.goto(base + "/console/sinks")
    assert page.locator(".badge").first.inner_text() == "ok"
    page.goto(base + "/console/activity?kind=webhook_event")
    assert page.locator("tr[data-kind=webhook_event]").count() == 1  # delivered to the SQLite sink

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/console/login")
    page.goto(base + "/console/sinks")
    assert "/console/login" in page.url
    outside = [u for u in page.requested if not u.startswith(base)]  # type: ignore[attr-defined]
    assert outside == [], outside


def test_no_console_url_answers_without_a_session(server, page) -> None:
    base, _settings = server
    for path in ("/console", "/console/accounts", f"/console/media/{MEDIA}", "/console/failures", "/console/sinks"):
        response = page.request.get(base + path, max_redirects=0)
        assert response.status in (302, 401), path
    fragment = page.request.get(base + "/console/overview.frag", max_redirects=0)
    assert fragment.status == 401


def test_a_post_without_the_csrf_token_is_refused(server, page) -> None:
    base, _settings = server
    log_in(page, base)
    for path in ("/console/failures/replay", f"/console/accounts/{ACCOUNT}/pause", "/console/logout"):
        answer = page.request.post(base + path, form={"for": "1h"}, max_redirects=0)
        assert answer.status in (400, 403), path
    page.goto(base + "/console/accounts")
    assert page.get_by_role("heading", name="Accounts").is_visible()  # still logged in
