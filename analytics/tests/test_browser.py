"""The community analytics page in Chromium, as its owner: the charts are drawn with their
data. Saves a screenshot to docs/images/analytics.png (the assertions read the DOM)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Browser, expect

from analytics.rollup import stats_rollup
from chat.tests.live import LiveServer, session_key

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path(settings.BASE_DIR) / "docs" / "images" / "analytics.png"


@pytest.fixture
def server(django_db_setup: None) -> Iterator[LiveServer]:
    live = LiveServer(DJANGO_ALLOW_ASYNC_UNSAFE="")
    live.start()
    yield live
    live.close()


def test_the_owner_sees_the_charts_drawn(make_year, server, browser: Browser):
    year = make_year(messages=2500)
    stats_rollup(now=year.now)
    owner = year.communities[0].created_by
    context = browser.new_context(
        base_url=server.url, viewport={"width": 1000, "height": 900}, device_scale_factor=1
    )
    context.set_default_timeout(10_000)
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session_key(owner), "url": server.url}]
    )
    try:
        page = context.new_page()
        page.goto("/c/hiking/manage/")
        page.get_by_test_id("analytics-link").click()
        expect(page).to_have_title("Analytics · Hiking · Hobbies Community")
        page.select_option("#analytics-days", "90")
        page.get_by_role("button", name="Show").click()
        expect(page).to_have_url(f"{server.url}/c/hiking/manage/analytics/?days=90")

        messages = page.locator('[data-chart="messages"] svg rect.bar')
        expect(messages).to_have_count(90)
        heights = messages.evaluate_all("bars => bars.map(b => b.getBBox().height)")
        assert sum(1 for h in heights if h > 0) > 60  # most days of a busy community have bars
        expect(page.locator('[data-chart="active"] polyline')).to_have_count(2)
        expect(page.locator('[data-chart="channels"] rect.bar')).to_have_count(5)
        expect(page.locator('[data-chart="hours"] rect.cell')).to_have_count(168)
        busy = page.locator('[data-chart="hours"] rect.cell:not(.level-0)')
        assert busy.count() > 100
        for title in ("Messages per day", "Busiest hours of the week", "Active members"):
            expect(page.get_by_role("img", name=title, exact=False)).to_be_visible()
        # The charts' tables open for those who cannot see the SVG.
        page.get_by_text("Busiest channels as a table").click()
        expect(page.locator('[data-chart="channels"] table tbody tr')).to_have_count(5)
        page.get_by_text("Busiest channels as a table").click()
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    finally:
        context.close()
