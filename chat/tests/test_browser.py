"""End to end in Chromium: the real app served by daphne, driven through Playwright.

The server runs in its own process against the test database, so every test commits its data
(`transaction=True`). Browsers are never downloaded: Chromium comes from the system.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from playwright.sync_api import Browser, BrowserContext, Page, expect

from accounts.models import User
from chat.models import Channel
from chat.services import message_send
from chat.tests.live import LiveServer, session_key
from communities.services import membership_join
from conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT_MS = 10_000


# --- The server and the browser ------------------------------------------------------------


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[LiveServer]:
    # The browser fixture lifts Django's async-safety guard in this process; the server keeps it.
    live = LiveServer(DJANGO_ALLOW_ASYNC_UNSAFE="")
    live.start()
    yield live
    live.close()


@pytest.fixture
def open_context(browser: Browser, server: LiveServer) -> Iterator[Callable[..., BrowserContext]]:
    """`open_context(**options)`: a fresh browser profile; all are closed after the test."""
    contexts: list[BrowserContext] = []

    def open_(**options: Any) -> BrowserContext:
        context = browser.new_context(base_url=server.url, **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context

    yield open_
    for context in contexts:
        context.close()


def session_cookie(user: User, server: LiveServer) -> dict[str, str]:
    """A session cookie for `user`, made here, valid on the server (same database and key)."""
    return {"name": settings.SESSION_COOKIE_NAME, "value": session_key(user), "url": server.url}


def has_class(css_class: str) -> re.Pattern[str]:
    return re.compile(rf"(^|\s){re.escape(css_class)}(\s|$)")


def ends_with(path: str) -> re.Pattern[str]:
    return re.compile(re.escape(path) + "$")


def send(channel: Channel, author: User, body: str) -> None:
    """Post through the service, from a thread of its own: Playwright holds this one's loop."""

    def post() -> None:
        try:
            message_send(channel=channel, author=author, body=body, client_id=uuid.uuid4())
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(post).result()


def watch_dialogs(page: Page) -> list[str]:
    """Every alert/confirm/prompt the page opens is recorded (and dismissed)."""
    seen: list[str] = []

    def on_dialog(dialog: Any) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


def open_channel(context: BrowserContext, path: str = "/c/photography/general/") -> Page:
    page = context.new_page()
    page.goto(path)
    expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
    return page


# --- Tests ----------------------------------------------------------------------------------


@pytest.fixture
def server_hashing(settings: Any) -> None:
    """Hash passwords made in this test as the server does (the suite's fast hash is local)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]


def test_message_typed_by_alice_appears_live_for_bob(
    server_hashing, open_context, server, alice, bob, general
):
    pages = {}
    for user in (alice, bob):
        context = open_context()
        page = context.new_page()
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_test_id("me")).to_have_text(user.display_name)
        page.goto("/c/photography/general/")
        expect(page.locator("#conn")).to_have_text("connected")
        pages[user.username] = page
    alice_page, bob_page = pages["alice"], pages["bob"]
    bob_page.evaluate("window.notReloaded = true")

    composer = alice_page.get_by_label("Message #general")
    composer.fill("Anyone out with a camera this weekend?")
    composer.press("Enter")

    live = bob_page.locator("#message-list .msg", has_text="Anyone out with a camera")
    expect(live).to_be_visible()
    expect(live.locator(".msg__who")).to_have_text("Alice Adams")
    assert bob_page.evaluate("window.notReloaded") is True
    expect(bob_page.locator("#conn")).to_have_text("connected")
    # Alice's own copy went from pending to the acknowledged message, once.
    mine = alice_page.locator("#message-list .msg", has_text="Anyone out with a camera")
    expect(mine).to_have_count(1)
    expect(mine).to_have_class(has_class("mine"))
    expect(mine).not_to_have_class(has_class("msg--pending"))
    expect(composer).to_have_value("")

    bob_page.reload()
    expect(
        bob_page.locator("#message-list .msg", has_text="Anyone out with a camera")
    ).to_have_count(1)


def test_hostile_message_shows_as_inert_text(open_context, server, alice, bob, general):
    alice_context, bob_context = open_context(), open_context()
    for context, user in ((alice_context, alice), (bob_context, bob)):
        context.add_cookies([session_cookie(user, server)])
    alice_page, bob_page = open_channel(alice_context), open_channel(bob_context)
    alice_dialogs, bob_dialogs = watch_dialogs(alice_page), watch_dialogs(bob_page)

    hostile = "<img src=x onerror=alert(1)> and [x](javascript:alert(1))"
    composer = alice_page.get_by_label("Message #general")
    composer.fill(hostile)
    composer.press("Enter")

    assert_inert(bob_page)  # as it arrived live
    bob_page.reload()
    assert_inert(bob_page)  # as the server renders the history
    assert_inert(alice_page)
    assert alice_dialogs == []
    assert bob_dialogs == []


def assert_inert(page: Page) -> None:
    message = page.locator("#message-list .msg[data-id]", has_text="onerror")
    expect(message).to_be_visible()
    expect(message.locator(".msg__body")).to_contain_text("<img src=x onerror=alert(1)> and")
    expect(message.locator("img")).to_have_count(0)
    expect(page.locator("#message-list [onerror]")).to_have_count(0)
    expect(page.locator("#message-list [href*='javascript:' i]")).to_have_count(0)
    # Clicking the text that was meant to be a script link runs nothing.
    message.locator(".msg__body").click()


def test_posting_works_without_javascript(open_context, server, bob, general):
    context = open_context(java_script_enabled=False)
    context.add_cookies([session_cookie(bob, server)])
    page = context.new_page()
    page.goto("/c/photography/general/")
    page.get_by_label("Message #general").fill("Posted the old-fashioned way")
    page.get_by_role("button", name="Send").click()

    expect(page).to_have_url(ends_with("/c/photography/general/#composer"))
    expect(
        page.locator("#message-list .msg", has_text="Posted the old-fashioned way")
    ).to_be_visible()
    expect(page.get_by_label("Message #general")).to_have_value("")


def test_phone_width_channel_page_is_usable(open_context, server, bob, general):
    context = open_context(viewport={"width": 390, "height": 844}, has_touch=True)
    context.add_cookies([session_cookie(bob, server)])
    page = open_channel(context)

    messages, composer = page.locator("#message-list"), page.get_by_label("Message #general")
    expect(messages).to_be_visible()
    expect(composer).to_be_in_viewport()
    channels = page.get_by_role("navigation", name="Channels in Photography")
    expect(channels).to_be_hidden()

    page.get_by_role("button", name="Show channels").click()
    expect(channels).to_be_visible()
    expect(channels.get_by_role("link", name="general")).to_be_in_viewport()
    page.keyboard.press("Escape")
    expect(channels).to_be_hidden()

    composer.fill("Sent from my phone")
    composer.press("Enter")
    sent = page.locator("#message-list .msg[data-id]", has_text="Sent from my phone")
    expect(sent).to_be_in_viewport()


def test_reconnect_replays_missed_messages_once(open_context, server, alice, bob, general):
    """The server goes away; messages posted meanwhile show up once after it comes back."""
    send(general, alice, "before the outage")
    context = open_context()
    context.add_cookies([session_cookie(bob, server)])
    page = open_channel(context)
    expect(page.locator(".msg", has_text="before the outage")).to_be_visible()

    server.stop()
    expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
    for body in ("missed one", "missed two"):
        send(general, alice, body)
    server.start()

    expect(page.locator("#conn")).to_have_text("connected", timeout=20_000)
    for body in ("missed one", "missed two"):
        expect(page.locator("#message-list .msg", has_text=body)).to_have_count(1)
    texts = page.locator("#message-list .msg[data-id] .msg__body").all_inner_texts()
    assert texts[-3:] == ["before the outage", "missed one", "missed two"]


def test_a_message_committed_but_never_published_still_appears(
    open_context, server, alice, bob, general
):
    """Posted from this test process, a message commits in the server's database but its
    broadcast goes to this process's own in-memory layer, never to the server: exactly a
    process killed between commit and broadcast. The server's head check finds it, and the page
    fetches it — once, in order — with no reload and no reconnect."""
    send(general, alice, "first")
    context = open_context()
    context.add_cookies([session_cookie(bob, server)])
    page = open_channel(context)
    expect(page.locator(".msg", has_text="first")).to_be_visible()

    send(general, alice, "never published")
    expect(page.locator("#message-list .msg", has_text="never published")).to_have_count(1)
    expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
    texts = page.locator("#message-list .msg[data-id] .msg__body").all_inner_texts()
    assert texts[-2:] == ["first", "never published"]


RLO_NAME = "\u202egnp.exe"  # shows as "exe.png" when the override is allowed to run on

# The right edge of the typing line's name, and the left edge of the words after it.
TYPING_GEOMETRY = """line => {
  const name = line.querySelector("bdi");
  const rest = document.createRange();
  rest.setStartAfter(name);
  rest.setEndAfter(line.lastChild);
  return [name.getBoundingClientRect().right, rest.getBoundingClientRect().left];
}"""


def test_bidi_controls_stay_inside_names_and_messages(
    open_context, server, make_user, alice, community, general
):
    evil = make_user("evil", display_name=RLO_NAME)
    membership_join(community=community, user=evil)
    send(general, evil, f"see {RLO_NAME} now")
    alice_context, evil_context = open_context(), open_context()
    alice_context.add_cookies([session_cookie(alice, server)])
    evil_context.add_cookies([session_cookie(evil, server)])
    alice_page, evil_page = open_channel(alice_context), open_channel(evil_context)

    message = alice_page.locator("#message-list .msg[data-id]", has_text="see")
    member = alice_page.locator("#member-list li", has_text="exe").locator(".member-list__name")
    for node in (
        message.locator(".msg__who"),
        message.locator(".msg__body"),
        member,
        evil_page.get_by_test_id("me"),
    ):
        assert node.evaluate("n => getComputedStyle(n).unicodeBidi") == "isolate"

    # Evil types: "‮gnp.exe is typing…" keeps " is typing…" after the name, unreversed.
    evil_page.get_by_label("Message #general").press_sequentially("hi")
    typing = alice_page.locator("#typing")
    expect(typing).to_contain_text("is typing…")
    name_right, rest_left = typing.evaluate(TYPING_GEOMETRY)
    assert rest_left >= name_right - 1

    # A reply quoting evil's message: the script's copy is replaced by the server's at the ack
    # (both use the same classes); checked once the server's copy is in place.
    message.hover()
    message.get_by_role("button", name="Reply").click()
    composer = alice_page.get_by_label("Message #general")
    composer.fill("quoted")
    composer.press("Enter")
    reply = alice_page.locator("#message-list .msg[data-id]", has_text="quoted").locator(
        ".msg__reply"
    )
    expect(reply).to_be_visible()
    for part in (".msg__reply-who", ".msg__reply-text"):
        assert reply.locator(part).evaluate("n => getComputedStyle(n).unicodeBidi") == "isolate"


def test_moderator_removes_a_message_from_the_page_and_readers_see_it_go(
    open_context, server, alice, bob, carol, general
):
    send(general, carol, "Cheap followers, DM me")
    moderator = open_context()
    moderator.add_cookies([session_cookie(alice, server)])  # type: ignore[list-item]
    reader = open_context()
    reader.add_cookies([session_cookie(bob, server)])  # type: ignore[list-item]
    mod_page = open_channel(moderator)
    bob_page = open_channel(reader)
    spam = mod_page.locator("#message-list .msg", has_text="Cheap followers")
    # Members report (⚑) but have no remove button.
    expect(bob_page.locator("#message-list .msg [data-action=remove]")).to_have_count(0)
    expect(
        bob_page.locator("#message-list .msg", has_text="Cheap followers").locator(
            "[data-action=report]"
        )
    ).to_have_count(1)
    mod_page.once("dialog", lambda dialog: dialog.accept("spam"))

    spam.hover()
    spam.locator("[data-action=remove]").click()

    gone = bob_page.locator("#message-list .msg--removed")
    expect(gone).to_have_text(re.compile("Removed by a moderator."))
    expect(bob_page.locator("#message-list")).not_to_contain_text("Cheap followers")
