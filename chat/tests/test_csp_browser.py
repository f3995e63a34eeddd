"""Every page works under the Content-Security-Policy in Chromium: each is visited, and its
scripts run (messages, reactions, edits, the emoji picker, an upload), while every violation
the browser reports is recorded. None may occur."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from accounts.services import site_roles_set
from chat.tests.conftest import jpeg
from chat.tests.live import CspWatch, LiveServer
from conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[LiveServer]:
    live = LiveServer(DJANGO_ALLOW_ASYNC_UNSAFE="", RATE_LIMITS_ENABLED="0")
    live.start()
    yield live
    live.close()


@pytest.fixture
def context(browser: Browser, server: LiveServer, settings: Any) -> Iterator[BrowserContext]:
    # Users made here get the password hash the server checks (the suite's fast one is local).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    opened = browser.new_context(base_url=server.url)
    opened.set_default_timeout(TIMEOUT_MS)
    yield opened
    opened.close()


def visit(page: Page, watch: CspWatch, path: str, status: int = 200) -> None:
    response = page.goto(path)
    assert response is not None
    assert response.status == status, path
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_load_state("load")
    watch.check(page)


def test_every_page_works_under_the_policy(context, alice, bob, community, general):
    site_roles_set(user=alice, roles={"admin"})  # the owner is a site admin too: the admin opens
    watch = CspWatch(context)
    page = context.new_page()

    visit(page, watch, "/accounts/signup/")
    visit(page, watch, "/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("me")).to_have_text("Alice Adams")
    page.get_by_role("button", name="Switch to the dark theme").click()
    watch.check(page)

    visit(page, watch, "/")
    visit(page, watch, "/c/photography/?about")

    visit(page, watch, "/c/photography/general/")
    expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
    composer = page.get_by_label("Message #general")
    composer.fill("Under a strict policy")
    composer.press("Enter")
    message = page.locator("#message-list .msg[data-id]").first
    expect(message).to_contain_text("Under a strict policy")
    # React through the emoji picker (positioned with element.style, which CSP allows).
    message.hover()
    message.get_by_role("button", name="Add reaction").click()
    picker = page.get_by_role("menu", name="Pick a reaction")
    expect(picker).to_be_visible()
    picker.get_by_role("menuitem").first.click()
    expect(message.locator(".reaction")).to_have_count(1)
    # Reply, then edit.
    message.hover()
    message.get_by_role("button", name="Reply").click()
    expect(page.locator("#reply-preview")).to_be_visible()
    composer.fill("A reply")
    composer.press("Enter")
    expect(page.locator("#message-list .msg[data-id] .msg__reply")).to_have_count(1)
    message.hover()
    message.get_by_role("button", name="Edit").click()
    editor = message.get_by_label("Edit message")
    editor.fill("Under a strict policy, edited")
    editor.press("Enter")
    expect(message.locator(".msg__edited")).to_be_visible()
    # Upload a photo; its thumbnail loads.
    page.set_input_files(
        "#composer-files", [{"name": "pike.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}]
    )
    expect(page.locator("#uploads .upload")).to_have_attribute("data-state", "ready")
    composer.fill("With a photo")
    composer.press("Enter")
    thumb = page.locator("#message-list .msg", has_text="With a photo").locator("img")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle()
    )
    # The composer grows with its text (element.style again).
    composer.fill("one\ntwo\nthree\nfour")
    watch.check(page)

    visit(page, watch, "/c/photography/general/settings/")
    visit(page, watch, "/c/photography/manage/")
    visit(page, watch, f"/invite/{community.invite_code}/")
    visit(page, watch, "/accounts/profile/")
    # A form sent with a bad CSRF token ends on our 403 page.
    page.evaluate(
        "document.querySelector('form.form [name=csrfmiddlewaretoken]').value = 'x'.repeat(64)"
    )
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Please try again")).to_be_visible()
    watch.check(page)

    visit(page, watch, "/c/no-such-community/", status=404)
    visit(page, watch, "/no/such/page/", status=404)

    visit(page, watch, "/admin/")
    visit(page, watch, "/admin/chat/message/")
    visit(page, watch, "/admin/hobbies/signin/")
    visit(page, watch, f"/admin/hobbies/user/{bob.pk}/change/")
    visit(page, watch, f"/admin/communities/community/{community.pk}/change/")

    assert watch.seen == []
