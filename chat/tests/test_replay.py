"""Replays serve stored renderings, and never a stale one."""

from __future__ import annotations

import json
import uuid

import pytest

from accounts.services import profile_update
from chat.hub import encode
from chat.models import Message
from chat.payloads import message_payload
from chat.replay import replay
from chat.services import message_edit, message_send, reaction_add
from conftest import client_for, say

pytestmark = pytest.mark.django_db


def replayed(channel, seq=0) -> list[dict]:
    return [json.loads(frame)["message"] for frame in replay(channel, seq=seq).frames]


def read_back(channel) -> list[dict]:
    rows = Message.objects.with_related().filter(channel=channel).order_by("seq")
    return [json.loads(encode(message_payload(m))) for m in rows]


def test_a_second_replay_reads_what_the_first_rendered(
    alice, bob, general, django_assert_num_queries
):
    for n in range(30):
        say(general, alice if n % 2 else bob, f"message {n}")
    first = replayed(general)
    assert first == read_back(general)
    # The channel's head, then the stored renderings: no rendering, whatever the count.
    with django_assert_num_queries(2):
        again = replayed(general)
    assert again == first


def test_every_change_to_what_a_message_shows_is_replayed_fresh(alice, bob, general):
    question = say(general, bob, "which lens?")
    answer = message_send(
        channel=general,
        author=alice,
        body="the 50mm",
        client_id=uuid.uuid4(),
        reply_to=question.id,
    ).message
    other = say(general, bob, "thanks")
    replayed(general)  # stored

    message_edit(message=question, by=bob, body="which lens for portraits?")
    reaction_add(message=other, user=alice, emoji="👍")
    profile_update(user=alice, display_name="Alice A.", bio="", hobbies="")

    fresh = {m["id"]: m for m in replayed(general)}
    assert fresh[question.id]["body"] == "which lens for portraits?"
    # The reply quotes the edited text, and shows its author's new name.
    assert fresh[answer.id]["reply_to"]["excerpt"] == "which lens for portraits?"
    assert fresh[answer.id]["author"]["display_name"] == "Alice A."
    assert fresh[other.id]["reactions"] == [{"emoji": "👍", "count": 1, "users": [alice.id]}]
    assert list(fresh.values()) == read_back(general)


def test_a_rendering_made_before_a_change_is_never_served_after_it(alice, general):
    message = say(general, alice, "draft")
    stale = Message.objects.get(id=message.id)
    # A replay read the message (version 0) just before an edit committed...
    message_edit(message=message, by=alice, body="final")
    # ...and stores what it rendered from that read, with the version it read.
    Message.objects.filter(id=message.id).update(
        payload_json=json.dumps({"body": "draft"}), payload_version=stale.version
    )
    assert [m["body"] for m in replayed(general)] == ["final"]


def history(client, channel, **query) -> dict:
    response = client.get(f"/api/channels/{channel.id}/messages/", query)
    assert response.status_code == 200, response.content
    return response.json()


def test_history_pages_are_served_from_the_stored_renderings(
    settings, alice, bob, general, django_assert_num_queries
):
    settings.RATE_LIMITS_ENABLED = False
    for n in range(60):
        say(general, alice if n % 2 else bob, f"message {n}")
    client = client_for(bob)
    first = history(client, general)
    assert first["messages"] == read_back(general)[-50:]
    assert first["has_more"] is True
    # Read again: the session, its user, the channel with the member's access, the page; the
    # same four whatever the page size, and no message rendered.
    for limit in (5, 50, 100):
        history(client, general, limit=limit)  # stores what this page newly covers
        with django_assert_num_queries(4):
            page = history(client, general, limit=limit)
        assert page["messages"] == read_back(general)[-limit:]
    older = history(client, general, before=first["messages"][0]["id"])
    assert older == {"messages": read_back(general)[:10], "has_more": False}


def test_history_never_serves_a_rendering_older_than_the_message(alice, bob, general):
    message = say(general, alice, "draft")
    client = client_for(bob)
    assert [m["body"] for m in history(client, general)["messages"]] == ["draft"]
    message_edit(message=message, by=alice, body="final")
    assert [m["body"] for m in history(client, general)["messages"]] == ["final"]
