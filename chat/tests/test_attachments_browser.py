"""Attachments end to end in Chromium: the composer uploads (to our server, or with a presigned
POST straight to the S3 API, CORS and all) and the photo shows inline for everyone, with no
Content-Security-Policy violation (the bucket's origin is in connect-src and img-src)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from chat.models import Attachment
from chat.tests.conftest import PDF, REGION, jpeg, make_bucket
from chat.tests.live import CspWatch
from chat.tests.test_browser import TIMEOUT_MS, LiveServer, session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module", params=["local", "s3"])
def attach_server(request: Any, django_db_setup: None) -> Iterator[LiveServer]:
    """daphne with local attachment storage, or with S3 (moto) and CORS for its origin."""
    # The S3 API first: the server process inherits its (throwaway) credentials.
    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else ""
    live = LiveServer()
    folder = tempfile.TemporaryDirectory(prefix="attachments-")
    live.env["ATTACHMENTS_ROOT"] = folder.name
    live.env["RATE_LIMITS_ENABLED"] = "0"
    if request.param == "s3":
        live.env.update(
            STORAGE_BACKEND="s3",
            AWS_STORAGE_BUCKET_NAME=make_bucket(endpoint, origins=[live.url]),
            AWS_S3_REGION_NAME=REGION,
            AWS_S3_ENDPOINT_URL=endpoint,
            AWS_S3_ADDRESSING_STYLE="path",
        )
    live.start()
    yield live
    live.close()
    folder.cleanup()


@pytest.fixture
def csp_watches() -> list[CspWatch]:
    return []


@pytest.fixture
def open_as(
    browser: Browser,
    attach_server: LiveServer,
    csp_watches: list[CspWatch],
) -> Iterator[Callable[..., Page]]:
    contexts: list[BrowserContext] = []

    def open_(user: Any) -> Page:
        context = browser.new_context(base_url=attach_server.url)
        context.set_default_timeout(TIMEOUT_MS)
        context.add_cookies([session_cookie(user, attach_server)])  # type: ignore[list-item]
        contexts.append(context)
        csp_watches.append(CspWatch(context))
        page = context.new_page()
        page.goto("/c/photography/general/")
        expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
        return page

    yield open_
    for context in contexts:
        context.close()


def photo_bytes() -> bytes:
    return jpeg((1200, 900), gps=True)


def test_photo_and_file_upload_then_show_for_everyone(open_as, csp_watches, alice, bob, general):
    alice_page, bob_page = open_as(alice), open_as(bob)
    alice_page.set_input_files(
        "#composer-files",
        [
            {"name": "pike.jpg", "mimeType": "image/jpeg", "buffer": photo_bytes()},
            {"name": "permit.pdf", "mimeType": "application/pdf", "buffer": PDF},
        ],
    )
    tray = alice_page.locator("#uploads .upload")
    expect(tray).to_have_count(2)
    for item in tray.all():
        expect(item).to_have_attribute("data-state", "ready")
        expect(item.locator("progress")).to_have_attribute("value", "100")
    composer = alice_page.get_by_label("Message #general")
    composer.fill("Caught this one at dawn")
    composer.press("Enter")

    for page in (alice_page, bob_page):
        message = page.locator("#message-list .msg", has_text="Caught this one at dawn")
        thumb = message.locator("img.attachment__thumb")
        expect(thumb).to_be_visible()
        expect(thumb).to_have_attribute("alt", "pike.jpg")
        # The thumbnail really loaded (through our view, and S3's presigned GET on S3).
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle()
        )
        assert thumb.evaluate("img => Math.max(img.naturalWidth, img.naturalHeight)") == 480
        card = message.locator(".attachment__card")
        expect(card).to_contain_text("permit.pdf")
        expect(card).to_contain_text("application/pdf")
    expect(alice_page.locator("#uploads .upload")).to_have_count(0)
    for page, watch in zip((alice_page, bob_page), csp_watches, strict=True):
        assert watch.check(page) == []

    # The full-size view opens on click.
    with bob_page.expect_popup() as popup:
        bob_page.locator("#message-list a.attachment__full").first.click()
    full = popup.value
    full.wait_for_load_state()
    size = full.evaluate(
        "() => { const i = document.images[0]; return [i.naturalWidth, i.naturalHeight] }"
    )
    assert size == [1200, 900]


def test_file_only_message_drop_and_paste(open_as, alice, general):
    page = open_as(alice)
    page.evaluate(
        """() => {
          const dropped = new DataTransfer();
          dropped.items.add(new File(["dropped notes\\n"], "dropped.txt", {type: "text/plain"}));
          document.querySelector(".pane--messages").dispatchEvent(
            new DragEvent("drop", {dataTransfer: dropped, bubbles: true, cancelable: true}));
          const pasted = new DataTransfer();
          pasted.items.add(new File(["pasted notes\\n"], "pasted.txt", {type: "text/plain"}));
          document.getElementById("composer-input").dispatchEvent(
            new ClipboardEvent("paste", {clipboardData: pasted, bubbles: true, cancelable: true}));
        }"""
    )
    items = page.locator("#uploads .upload")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_have_attribute("data-state", "ready")
    expect(items.nth(1)).to_have_attribute("data-state", "ready")
    page.get_by_label("Message #general").press("Enter")  # no text: files alone are a message
    cards = page.locator("#message-list .msg .attachment__card")
    expect(cards).to_have_count(2)
    expect(cards.nth(0)).to_contain_text("dropped.txt")
    expect(cards.nth(1)).to_contain_text("pasted.txt")


def test_cancel_and_refused_upload(open_as, alice, general):
    page = open_as(alice)
    page.set_input_files(
        "#composer-files",
        [
            {"name": "keep.jpg", "mimeType": "image/jpeg", "buffer": photo_bytes()},
            {"name": "fake.jpg", "mimeType": "image/jpeg", "buffer": b"<html>not a photo</html>"},
        ],
    )
    keep, fake = page.locator("#uploads .upload").nth(0), page.locator("#uploads .upload").nth(1)
    expect(keep).to_have_attribute("data-state", "ready")
    expect(fake).to_have_attribute("data-state", "failed")
    expect(fake.locator(".upload__status")).to_contain_text("text/html")
    # A failed upload holds the message back until it is removed.
    page.get_by_label("Message #general").fill("two files")
    page.get_by_label("Message #general").press("Enter")
    expect(page.get_by_label("Message #general")).to_have_value("two files")
    fake.get_by_role("button", name="Remove fake.jpg").click()
    keep.get_by_role("button", name="Remove keep.jpg").click()
    expect(page.locator("#uploads .upload")).to_have_count(0)
    expect_no_attachments(page)


def expect_no_attachments(page: Page) -> None:
    """Poll the database until the cancelled upload is gone (the DELETE is asynchronous)."""
    for _ in range(100):
        if not Attachment.objects.exists():
            return
        page.wait_for_timeout(100)
    assert list(Attachment.objects.values_list("name", flat=True)) == []
