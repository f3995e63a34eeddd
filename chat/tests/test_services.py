"""Channels, messages, reactions and read markers, through the service functions."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import connection

from chat.hub import encode
from chat.models import Channel, ChannelMember, Mention, Message, MessageRevision, Reaction
from chat.payloads import message_payload
from chat.selectors import (
    channel_for_member,
    channel_for_sender,
    channels_for_user,
    message_for_member,
)
from chat.services import (
    channel_create,
    channel_member_add,
    channel_member_remove,
    message_delete,
    message_edit,
    message_send,
    reaction_add,
    reaction_remove,
    read_mark,
)
from conftest import say
from hobbies.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited, TooLong

pytestmark = pytest.mark.django_db


def payload_of(message: Message) -> dict:
    return message_payload(Message.objects.with_related().get(id=message.id))


# --- Sending --------------------------------------------------------------------------------


def test_send_renders_and_moves_the_channel_marker(alice, general):
    message = say(general, alice, "hello **world**")
    general.refresh_from_db()
    assert general.last_message_id == message.id
    payload = payload_of(message)
    assert payload["body"] == "hello **world**"
    assert "<strong>world</strong>" in payload["html"]
    assert payload["author"] == {"id": alice.id, "username": "alice", "display_name": "Alice Adams"}
    assert payload["edited_at"] is None
    assert payload["deleted"] is False


def test_send_is_idempotent_on_client_id(alice, general):
    client_id = uuid.uuid4()
    first = message_send(channel=general, author=alice, body="once", client_id=client_id)
    again = message_send(channel=general, author=alice, body="different text", client_id=client_id)
    assert (first.created, again.created) == (True, False)
    assert again.message.id == first.message.id
    assert again.payload == first.payload
    assert Message.objects.filter(author=alice).count() == 1


def test_client_id_reused_in_another_channel_is_a_conflict(alice, general):
    other = channel_create(community=general.community, name="gear", by=alice)
    client_id = uuid.uuid4()
    message_send(channel=general, author=alice, body="one", client_id=client_id)
    with pytest.raises(Conflict):
        message_send(channel=other, author=alice, body="two", client_id=client_id)


@pytest.mark.parametrize(
    ("body", "client_id", "error"),
    [
        ("", uuid.uuid4(), Invalid),
        ("   \n ", uuid.uuid4(), Invalid),
        ("x" * 4001, uuid.uuid4(), TooLong),
        ("bell \x07", uuid.uuid4(), Invalid),
    ],
)
def test_send_refuses_bad_input_and_writes_nothing(alice, general, body, client_id, error):
    with pytest.raises(error):
        message_send(channel=general, author=alice, body=body, client_id=client_id)
    assert not Message.objects.exists()
    general.refresh_from_db()
    assert general.last_message_id == 0


def test_announcement_channel_takes_posts_from_moderators_only(alice, bob, community):
    news = channel_create(community=community, name="news", kind="announcement", by=alice)
    with pytest.raises(Forbidden):
        say(news, bob, "can I?")
    say(news, alice, "Meetup on Saturday")
    assert [m.body for m in news.messages.all()] == ["Meetup on Saturday"]


def test_only_moderators_create_channels(bob, community):
    with pytest.raises(Forbidden):
        channel_create(community=community, name="gear", by=bob)
    assert not Channel.objects.filter(name="gear").exists()


def test_message_rate_limit_per_user(alice, general, settings):
    settings.RATE_LIMIT_MESSAGES_USER = (3, 3600)
    for n in range(3):
        say(general, alice, f"message {n}")
    with pytest.raises(RateLimited):
        say(general, alice, "one too many")
    assert general.messages.count() == 3


def test_a_member_past_their_limit_does_not_use_up_the_channels(alice, bob, general, settings):
    """Sends refused by the author's own limit are not counted against the channel's, so one
    member hammering a channel does not silence everyone else in it."""
    settings.RATE_LIMIT_MESSAGES_USER = (2, 3600)
    settings.RATE_LIMIT_MESSAGES_CHANNEL = (4, 3600)
    for n in range(2):
        say(general, alice, f"message {n}")
    for _ in range(5):
        with pytest.raises(RateLimited):
            say(general, alice, "one too many")
    say(general, bob, "bob still gets through")
    say(general, bob, "and again")
    with pytest.raises(RateLimited, match="Too many requests"):
        say(general, bob, "but the channel's limit holds")
    assert general.messages.count() == 4


# --- Replies and mentions -------------------------------------------------------------------


def test_reply_quotes_the_parent(alice, bob, general):
    parent = say(general, alice, "Who has a 50mm lens?")
    reply = say(general, bob, "I do", reply_to=parent.id)
    payload = payload_of(reply)
    assert payload["reply_to"]["id"] == parent.id
    assert payload["reply_to"]["excerpt"] == "Who has a 50mm lens?"
    assert payload["reply_to"]["author"]["username"] == "alice"
    assert "Who has a 50mm lens?" in payload["html"]
    assert f'href="#m{parent.id}"' in payload["html"]


def test_reply_to_a_message_of_another_channel_is_refused(alice, bob, general):
    gear = channel_create(community=general.community, name="gear", by=alice)
    elsewhere = say(gear, alice, "in gear")
    with pytest.raises(NotFound):
        say(general, bob, "reply", reply_to=elsewhere.id)
    assert not general.messages.exists()


def test_mentions_only_for_channel_members(alice, bob, carol, mallory, community):
    mods = channel_create(community=community, name="mods", kind="private", by=alice)
    channel_member_add(channel=mods, user=bob, by=alice)
    message = say(mods, alice, "@bob @carol @mallory look")
    assert "@bob</span>" in message.body_html
    assert 'class="mention"' in message.body_html
    assert message.body_html.count('class="mention"') == 1
    assert list(Mention.objects.values_list("user_id", flat=True)) == [bob.id]


def test_editing_in_a_mention_adds_it(alice, bob, general):
    message = say(general, alice, "hi")
    message_edit(message=message, by=alice, body="hi @bob")
    assert Mention.objects.filter(message=message, user=bob).count() == 1
    [row] = [c for c in channels_for_user(bob) if c["id"] == general.id]
    assert row["mentions"] == 1


# --- Editing and deleting -------------------------------------------------------------------


def test_edit_marks_edited_and_keeps_the_previous_version(alice, bob, general):
    message = say(general, alice, "teh lens")
    message_edit(message=message, by=alice, body="the lens")
    payload = payload_of(message)
    assert payload["body"] == "the lens"
    assert payload["edited_at"] is not None
    assert "(edited)" in payload["html"]
    assert list(MessageRevision.objects.filter(message=message).values_list("body", flat=True)) == [
        "teh lens"
    ]
    with pytest.raises(Forbidden):
        message_edit(message=message, by=bob, body="hijacked")
    message.refresh_from_db()
    assert message.body == "the lens"


def test_delete_leaves_a_tombstone_and_needs_author_or_moderator(alice, bob, carol, general):
    own = say(general, bob, "mine")
    other = say(general, carol, "carol's")
    reaction_add(message=own, user=alice, emoji="👍")
    with pytest.raises(Forbidden):
        message_delete(message=other, by=bob)
    message_delete(message=own, by=bob)
    message_delete(message=other, by=alice)  # the owner moderates
    for message in (own, other):
        payload = payload_of(message)
        assert payload["deleted"] is True
        assert payload["body"] == ""
        assert payload["reactions"] == []
        assert "This message was deleted." in payload["html"]
    assert MessageRevision.objects.get(message=own).body == "mine"
    with pytest.raises(Invalid):
        message_edit(message=Message.objects.get(id=own.id), by=bob, body="back")


# --- Reactions ------------------------------------------------------------------------------


def test_reactions_are_counted_per_emoji(alice, bob, carol, general):
    message = say(general, alice, "new lens!")
    reaction_add(message=message, user=bob, emoji="🎉")
    reaction_add(message=message, user=carol, emoji="🎉")
    reaction_add(message=message, user=carol, emoji="🎉")  # once per person
    reaction_add(message=message, user=bob, emoji="👍")
    assert payload_of(message)["reactions"] == [
        {"emoji": "🎉", "count": 2, "users": [bob.id, carol.id]},
        {"emoji": "👍", "count": 1, "users": [bob.id]},
    ]
    reaction_remove(message=message, user=bob, emoji="🎉")
    assert payload_of(message)["reactions"][0] == {"emoji": "🎉", "count": 1, "users": [carol.id]}


@pytest.mark.parametrize("emoji", ["", "abc", "a👍", "👍 ", "👍" * 17, "<b>"])
def test_invalid_emoji_is_refused(alice, general, emoji):
    message = say(general, alice, "react to me")
    if emoji == "👍 ":
        # Surrounding spaces are trimmed: that one is fine.
        reaction_add(message=message, user=alice, emoji=emoji)
        assert Reaction.objects.get().emoji == "👍"
        return
    with pytest.raises(Invalid):
        reaction_add(message=message, user=alice, emoji=emoji)
    assert not Reaction.objects.exists()


# --- Private channels and read markers ------------------------------------------------------


def test_private_channel_membership(alice, bob, carol, community):
    mods = channel_create(community=community, name="mods", kind="private", by=alice)
    assert [c["name"] for c in channels_for_user(bob)] == ["general"]
    with pytest.raises(Forbidden):
        channel_member_add(channel=mods, user=carol, by=bob)
    channel_member_add(channel=mods, user=bob, by=alice)
    assert [c["name"] for c in channels_for_user(bob)] == ["general", "mods"]
    message = say(mods, alice, "secret plans")
    assert message_for_member(bob, message.id) == message
    with pytest.raises(Forbidden):
        channel_member_remove(channel=mods, user=bob, by=carol)
    channel_member_remove(channel=mods, user=bob, by=alice)
    with pytest.raises(NotFound):
        message_for_member(bob, message.id)


def test_read_marker_moves_forward_only_and_resets_unread(alice, bob, general):
    first = say(general, alice, "one")
    second = say(general, alice, "two @bob")
    [row] = channels_for_user(bob)
    assert (row["unread"], row["mentions"], row["last_id"]) == (2, 1, second.id)
    assert read_mark(channel=general, user=bob, message_id=second.id) == second.id
    assert read_mark(channel=general, user=bob, message_id=first.id) == second.id
    assert read_mark(channel=general, user=bob, message_id=10**9) == second.id
    [row] = channels_for_user(bob)
    assert (row["unread"], row["mentions"]) == (0, 0)


def test_own_messages_are_not_unread(alice, general):
    say(general, alice, "talking to myself")
    [row] = channels_for_user(alice)
    assert row["unread"] == 0
    assert ChannelMember.objects.get(channel=general, user=alice).last_read_id == row["last_id"]


def test_deleted_messages_are_not_unread(alice, bob, general):
    say(general, alice, "@bob kept")
    gone = say(general, alice, "@bob gone")
    message_delete(message=gone, by=alice)
    [row] = channels_for_user(bob)
    assert (row["unread"], row["mentions"]) == (1, 1)


@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_with_one_client_id_make_one_message(alice, general):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from django.db import connection

    client_id, start = uuid.uuid4(), Barrier(4)

    def send(n: int) -> int:
        try:
            start.wait()
            sent = message_send(channel=general, author=alice, body=f"try {n}", client_id=client_id)
            return sent.message.id
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        ids = set(pool.map(send, range(4)))
    assert len(ids) == 1
    assert Message.objects.filter(author=alice).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_payload_everyone_gets_is_the_payload_read_back(
    alice, bob, general, django_assert_max_num_queries
):
    """The broadcast of a new message is built from the objects in hand, not read back: it must
    equal what reading the message back gives (history, replays)."""
    parent = say(general, bob, "a question")
    # Outside any transaction, as a socket or a request sends: the broadcast is built at commit
    # from the objects in hand (the statements: the author with the retry check, the author's
    # role and timeout, the reply target, mentions, then the transaction's lock, insert,
    # channel, mention, read marker; after commit, the stored rendering).
    with django_assert_max_num_queries(12):
        sent = message_send(
            channel=general,
            author=alice,
            body="an answer for @bob",
            client_id=uuid.uuid4(),
            reply_to=parent.id,
        )
    assert sent.payload == payload_of(sent.message)
    # Stored as the message's rendering: replays and history serve it without rendering.
    stored = Message.objects.get(id=sent.message.id)
    assert (stored.payload_version, json.loads(stored.payload_json)) == (
        stored.version,
        json.loads(encode(sent.payload)),
    )
    assert sent.payload["reply_to"]["excerpt"] == "a question"
    assert 'class="mention"' in sent.payload["html"]


@pytest.mark.django_db(transaction=True)
def test_a_send_as_a_socket_makes_is_a_pinned_number_of_statements(
    alice, general, django_assert_num_queries
):
    """The fetch that checks membership also reads the author's role and timeout, and the
    author is read with the retry check: a plain send is these statements and no more. On
    PostgreSQL three round trips: the channel with the standing and the author with the retry
    check; begin with the lock, which takes the message id; the insert (with its stored
    rendering), the channel's head, the read marker and the commit. On SQLite nine statements:
    the two reads, BEGIN, the channel again, the insert, three updates (the stored rendering
    apart) and COMMIT."""
    say(general, alice, "the first send of a process compiles its statements, once")
    client_id = uuid.uuid4()
    with django_assert_num_queries(3 if connection.vendor == "postgresql" else 9):
        channel, sender = channel_for_sender(alice, general.id, client_id)
        sent = message_send(
            channel=channel, author=alice, body="hi", client_id=client_id, sender=sender
        )
    assert sent.created
    assert sent.payload == payload_of(sent.message)
    # The retry of it: the same message, nothing written.
    again = message_send(
        channel=channel_for_member(alice, general.id),
        author=alice,
        body="hi",
        client_id=sent.message.client_id,
    )
    assert (again.created, again.message.id) == (False, sent.message.id)
