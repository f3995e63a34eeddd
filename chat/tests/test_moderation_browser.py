"""Moderation end to end in Chromium: a member reports a spammer's message, a moderator removes
it from the queue page, it goes live from the member's window, and the spammer, timed out and
then banned, can neither post nor rejoin (through the directory or an invite link).

With `DOC_SCREENSHOTS=<folder>` the test also saves the pictures docs/moderation.md shows (a
1100 by 800 viewport, or single elements): `DOC_SCREENSHOTS=docs/images`.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from playwright.sync_api import BrowserContext, Locator, Page, expect

from chat.models import Message
from chat.moderation import report_create
from chat.services import message_send
from chat.tests.live import LiveServer
from chat.tests.test_browser import open_channel, open_context, send, server, session_cookie
from communities.models import Community
from communities.services import community_filter_set, membership_join
from conftest import say
from hobbies.errors import HeldForReview

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
__all__ = ["open_context", "server"]  # fixtures, shared with the channel page's tests

VIEWPORT = {"width": 1100, "height": 800}
BANNED = "You are banned from this community."


def shot(target: Page | Locator, name: str) -> None:
    """Save a picture for the docs when DOC_SCREENSHOTS names a folder."""
    folder = os.environ.get("DOC_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    target.screenshot(path=str(Path(folder) / f"{name}.png"), animations="disabled")


def in_thread(work: Callable[[], Any]) -> Any:
    """Run database work in a thread of its own: Playwright holds this one's event loop."""

    def run() -> Any:
        try:
            return work()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def as_user(open_context: Any, server: LiveServer, user: Any) -> BrowserContext:
    context: BrowserContext = open_context(viewport=VIEWPORT)
    context.add_cookies([session_cookie(user, server)])  # type: ignore[list-item]
    return context


def more_for_the_queue(general: Any, bob: Any, make_user: Any) -> None:
    community = general.community
    erin = make_user("erin", display_name="Erin Evans")
    membership_join(community=community, user=erin)
    lenses = say(general, erin, "Cheap lenses at lens-deals.example, trust me")
    report_create(message=lenses, by=bob, reason="spam")
    community_filter_set(
        community=community, by=community.created_by, blocked_words="", held_words="casino"
    )
    with contextlib.suppress(HeldForReview):
        message_send(channel=general, author=erin, body="Casino night?", client_id=uuid.uuid4())


def test_a_reported_spammer_is_removed_live_timed_out_and_banned_for_good(
    open_context, server, make_user, alice, bob, carol, general
):
    send(general, bob, "Anyone going to the dawn shoot on Saturday?")
    send(general, carol, "Cheap followers, DM me")
    send(general, alice, "Yes, meet at the pier at 6.")
    in_thread(lambda: call_command("grant_admin", "alice", stdout=StringIO()))
    spam_id = in_thread(lambda: Message.objects.get(body="Cheap followers, DM me").id)
    invite = in_thread(lambda: Community.objects.get(slug="photography").invite_code)

    member, moderator, spammer = (as_user(open_context, server, u) for u in (bob, alice, carol))
    bob_page, carol_page = open_channel(member), open_channel(spammer)

    # Bob reports the message from the channel page.
    spam = bob_page.locator("#message-list .msg", has_text="Cheap followers")
    spam.hover()
    spam.locator("[data-action=report]").click()
    dialog = bob_page.get_by_role("dialog", name="Report a message")
    dialog.get_by_label("Reason").select_option("spam")
    dialog.get_by_label("Note for the moderators (optional)").fill("Third time today.")
    dialog.get_by_role("button", name="Report").click()
    expect(bob_page.get_by_text("Thanks: the moderators will look at it.")).to_be_visible()

    # Alice removes it from the queue.
    queue = moderator.new_page()
    queue.goto("/c/photography/moderation/")
    reported = queue.get_by_test_id("reported")
    expect(reported).to_contain_text("Cheap followers, DM me")
    expect(reported).to_contain_text("Third time today.")
    shot(queue, "moderation-queue")
    reported.get_by_label("Outcome").select_option("remove")
    reported.get_by_label("Reason").fill("Spam")
    reported.get_by_role("button", name="Resolve").click()
    expect(queue.get_by_text("No open reports.")).to_be_visible()

    # It goes from Bob's window live, and from the author's.
    gone = bob_page.locator(f"#m{spam_id}")
    expect(gone).to_have_class(re.compile(r"\bmsg--removed\b"))
    expect(gone).to_contain_text("Removed by a moderator.")
    expect(bob_page.locator("#message-list")).not_to_contain_text("Cheap followers")
    expect(carol_page.locator(f"#m{spam_id}")).to_contain_text("Removed by a moderator.")
    shot(carol_page.locator("#message-list"), "removed-as-author")
    record = moderator.new_page()
    record.goto(f"/c/photography/moderation/messages/{spam_id}/")
    expect(record.locator("main")).to_contain_text("Cheap followers, DM me")
    shot(record, "removed-as-moderator")

    # A timeout from the manage page: Carol reads, but the composer says until when.
    manage = moderator.new_page()
    manage.goto("/c/photography/manage/")
    row = manage.get_by_role("row", name=re.compile("@carol"))
    row.get_by_label("Timeout length for carol").select_option("60")
    row.get_by_role("button", name="Time out").click()
    expect(manage.get_by_role("row", name=re.compile("@carol"))).to_contain_text("timed out until")
    shot(manage.get_by_role("table"), "manage-moderation-tools")
    carol_page.reload()
    note = carol_page.get_by_test_id("timeout-note")
    expect(note).to_contain_text("A moderator timed you out until")
    shot(carol_page.locator(".composer").first, "timeout-notice")

    # Then a ban: Carol cannot come back through the directory or the invite link.
    manage.get_by_role("row", name=re.compile("@carol")).get_by_role("button", name="Ban").click()
    expect(manage.get_by_role("row", name=re.compile("@carol"))).to_have_count(0)
    directory = spammer.new_page()
    directory.goto("/")
    directory.get_by_role("link", name="Photography").first.click()
    directory.get_by_role("button", name="Join").click()
    expect(directory.get_by_text(BANNED)).to_be_visible()
    # The invite page says so at once, with no button to accept.
    directory.goto(f"/invite/{invite}/")
    expect(directory.get_by_text(BANNED)).to_be_visible()
    expect(directory.get_by_role("button", name="Accept invite")).to_have_count(0)
    assert in_thread(lambda: not carol.memberships.exists())

    # The admin's overview shows the week's work, and what waits: another report, a held message.
    in_thread(lambda: more_for_the_queue(general, bob, make_user))
    admin = moderator.new_page()
    admin.goto("/admin/")
    admin.get_by_role("link", name="Moderation overview").click()
    expect(admin.get_by_role("heading", name="Actions this week, by moderator")).to_be_visible()
    expect(admin.locator("#actions-by-moderator")).to_contain_text("alice")
    expect(admin.locator("#busiest-channels")).to_contain_text("general")
    expect(admin.get_by_test_id("open-reports")).to_have_text("1")
    expect(admin.get_by_test_id("pending-held")).to_have_text("1")
    shot(admin, "admin-overview")
