"""End to end in Chromium with MESSAGING_BACKEND=chime: the app served by daphne sends to the
fake Chime on loopback (chat/tests/fake_chime.py), and the Chime bridge runs beside it, as
`manage.py chime_bridge` would. Two people chat; a message another Chime client sends appears
live; a channel flow's pending, sent and denied messages show to their author as such, and a
denied one never reaches anyone else.

The bridge runs in this process. With the embedded default (no `REDIS_URL`) it shares only the
database with the server, which is enough: the server's hub sees the channel's new head within
`CHAT_HEAD_INTERVAL`s and the pages fetch what they miss, and the author's page asks where the
flow is with a pending message. With Redis the same events are also pushed at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import BrowserContext, Page, expect

from chat.backends.chime import ChimeConfig
from chat.models import HeldMessage
from chat.tests import fake_chime as fake_module
from chat.tests.live import LiveServer, session_key
from chat.tests.test_chime_bridge import Running, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT_MS = 15_000


@pytest.fixture
def chime_server(chime: Any, settings: Any) -> Iterator[LiveServer]:
    """daphne with the same Chime settings as this process (the fake's endpoints and keys)."""
    settings.CHIME_FLOW_POLL_SECONDS = 0.2
    live = LiveServer(
        DJANGO_ALLOW_ASYNC_UNSAFE="",
        MESSAGING_BACKEND="chime",
        CHIME_APP_INSTANCE_ARN=django_settings.CHIME_APP_INSTANCE_ARN,
        CHIME_IDENTITY_ENDPOINT_URL=chime.identity_url,
        CHIME_MESSAGING_ENDPOINT_URL=chime.messaging_url,
        CHIME_SESSION_SCHEME="ws",
        AWS_REGION=fake_module.REGION,
        AWS_ACCESS_KEY_ID=fake_module.ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=fake_module.SECRET_KEY,
    )
    live.start()
    yield live
    live.close()


@pytest.fixture
def chime_bridge(chime_server: LiveServer) -> Iterator[Running]:
    running = Running()
    yield running
    running.kill()


def open_as(browser: Any, server: LiveServer, user: Any) -> tuple[BrowserContext, Page]:
    context = browser.new_context(base_url=server.url)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_cookies(
        [
            {
                "name": django_settings.SESSION_COOKIE_NAME,
                "value": session_key(user),
                "url": server.url,
            }
        ]
    )
    page = context.new_page()
    page.goto("/c/photography/general/")
    expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
    return context, page


def has_class(css_class: str) -> re.Pattern[str]:
    return re.compile(rf"(^|\s){re.escape(css_class)}(\s|$)")


def type_message(page: Page, text: str) -> None:
    composer = page.get_by_label("Message #general")
    composer.fill(text)
    composer.press("Enter")


def messages(page: Page, text: str) -> Any:
    return page.locator("#message-list .msg", has_text=text)


def test_chime_chat_other_clients_and_channel_flows(
    browser, chime, alice, bob, general, chime_server, chime_bridge
):
    cfg = ChimeConfig.from_settings()
    channel_arn = cfg.channel_arn(general.pk)
    contexts = []
    try:
        alice_context, alice_page = open_as(browser, chime_server, alice)
        bob_context, bob_page = open_as(browser, chime_server, bob)
        contexts += [alice_context, bob_context]

        # Two people chat; each message goes to Chime as its author.
        type_message(alice_page, "Morning walk at eight?")
        expect(messages(bob_page, "Morning walk at eight?")).to_be_visible()
        type_message(bob_page, "Count me in")
        expect(messages(alice_page, "Count me in")).to_be_visible()
        sent = [m for m in chime.channels[channel_arn].messages if m["Content"] == "Count me in"]
        assert sent and sent[0]["_sender"] == cfg.user_arn(bob.pk)

        # Bob's phone app (another Chime client) posts straight to Chime: both pages show it.
        chime.post_as(cfg.user_arn(bob.pk), channel_arn, "Sent from my phone")
        for page in (alice_page, bob_page):
            phone = messages(page, "Sent from my phone")
            expect(phone).to_be_visible()
            expect(phone.locator(".msg__who")).to_have_text("Bob Brown")

        # The channel gets a flow: Alice's next messages wait for its checks.
        chime.pending_channels = {channel_arn}
        type_message(alice_page, "Is this allowed?")
        waiting = messages(alice_page, "Is this allowed?")
        expect(waiting).to_have_attribute("data-status", "pending")
        expect(waiting).to_have_class(has_class("msg--held"))
        expect(waiting.get_by_test_id("flow-status")).to_contain_text("checks messages")
        assert wait_until(lambda: HeldMessage.objects.filter(body="Is this allowed?").exists())
        denied_id = HeldMessage.objects.get(body="Is this allowed?").external_id

        type_message(alice_page, "Checked and fine")
        checked = messages(alice_page, "Checked and fine")
        expect(checked).to_have_attribute("data-status", "pending")
        assert wait_until(lambda: HeldMessage.objects.filter(body="Checked and fine").exists())
        fine_id = HeldMessage.objects.get(body="Checked and fine").external_id

        chime.resolve(denied_id, "DENIED", "Not allowed here")
        chime.resolve(fine_id, "SENT")

        # Sent: everyone gets it, and Alice's pending copy becomes the message, once.
        expect(messages(bob_page, "Checked and fine")).to_be_visible()
        expect(checked).to_have_count(1)
        expect(checked).not_to_have_class(has_class("msg--held"))
        expect(checked).to_have_attribute("data-id", re.compile(r"^\d+$"))

        # Denied: Alice sees it refused, with the reason; nobody else ever sees it.
        expect(waiting).to_have_attribute("data-status", "denied")
        expect(waiting).to_have_class(has_class("msg--denied"))
        expect(waiting.get_by_role("alert")).to_contain_text(
            "Not sent: this channel's checks refused the message"
        )
        expect(waiting.get_by_role("button", name="Retry")).to_have_count(0)
        expect(messages(bob_page, "Is this allowed?")).to_have_count(0)
        bob_page.reload()
        expect(bob_page.locator("#conn")).to_have_attribute("data-state", "connected")
        expect(messages(bob_page, "Checked and fine")).to_have_count(1)
        expect(messages(bob_page, "Is this allowed?")).to_have_count(0)
    finally:
        for context in contexts:
            context.close()
