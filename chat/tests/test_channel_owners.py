"""Channel settings for moderators and owners through the page: rename, topic, archive and
unarchive, delete. Subscribers see each change live; each is audited; who may is the policy's."""

from __future__ import annotations

import uuid

import pytest
from channels.db import database_sync_to_async as db
from django.test import Client

from chat.models import Channel, ChannelMember, Message
from chat.services import channel_archive, channel_create
from communities.models import AuditEntry, Community, Membership
from communities.services import membership_join, membership_set_role
from conftest import client_for, say


@pytest.fixture
def films(alice, community):
    return channel_create(community=community, name="films", by=alice, topic="Cinema")


def settings_url(channel: Channel) -> str:
    return f"/c/{channel.community.slug}/{channel.name}/settings/"


async def as_user(user, method, *args, **kwargs):
    return await db(lambda: getattr(client_for(user), method)(*args, **kwargs))()


def actions(community: Community) -> list[str]:
    return list(
        AuditEntry.objects.filter(community=community)
        .exclude(action__in=["member.role", "channel.create"])
        .values_list("action", flat=True)
    )


@pytest.mark.django_db(transaction=True)
async def test_rename_and_topic_reach_subscribers_live(connect, alice, bob, community, films):
    reader = await connect(bob)
    await reader.subscribe(films.id)
    client = await db(client_for)(alice)
    response = await db(client.post)(settings_url(films), {"action": "rename", "name": "Movies"})
    assert response.status_code == 302 and response["Location"].endswith("/movies/settings/")
    frame = await reader.recv_type("channel.updated")
    assert frame["channel"]["name"] == "movies"
    assert frame["channel"]["url"] == "/c/photography/movies/"
    await db(client.post)("/c/photography/movies/settings/", {"action": "topic", "topic": "Films"})
    frame = await reader.recv_type("channel.updated")
    assert frame["channel"]["topic"] == "Films" and not frame["channel"]["archived"]
    assert await db(actions)(community) == ["channel.topic", "channel.rename"]


@pytest.mark.django_db(transaction=True)
async def test_archive_is_read_only_hidden_and_readable(connect, alice, bob, community, films):
    said = await db(say)(films, bob, "before")
    reader = await connect(bob)
    await reader.subscribe(films.id)
    client = await db(client_for)(alice)
    await db(client.post)(settings_url(films), {"action": "archive"})
    frame = await reader.recv_type("channel.updated")
    assert frame["channel"]["archived"] is True
    # Readable, but no posts, reactions or edits.
    page = (await as_user(bob, "get", "/c/photography/films/")).content.decode()
    assert "before" in page and 'id="composer"' not in page
    await reader.send(
        {"type": "message.send", "channel": films.id, "client_id": str(uuid.uuid4()), "body": "x"}
    )
    assert (await reader.recv_type("error"))["code"] == "forbidden"
    await reader.send({"type": "reaction.add", "message": said.id, "emoji": "👍"})
    assert (await reader.recv_type("error"))["code"] == "forbidden"
    await reader.send({"type": "message.edit", "message": said.id, "body": "changed"})
    assert (await reader.recv_type("error"))["code"] == "forbidden"
    posted = await as_user(bob, "post", "/c/photography/films/post/", {"body": "form"})
    assert posted.status_code == 302
    assert await db(Message.objects.filter(channel=films).count)() == 1
    # Hidden from the channel list, listed under archived channels on the about page.
    general_page = (await as_user(bob, "get", "/c/photography/general/")).content.decode()
    assert f'data-channel="{films.id}"' not in general_page
    about = (await as_user(bob, "get", "/c/photography/?about")).content.decode()
    assert 'data-testid="archived-channels"' in about and "/c/photography/films/" in about
    await db(client.post)(settings_url(films), {"action": "unarchive"})
    assert (await reader.recv_type("channel.updated"))["channel"]["archived"] is False
    await db(say)(films, bob, "after")
    assert await db(actions)(community) == ["channel.unarchive", "channel.archive"]


@pytest.mark.django_db(transaction=True)
async def test_delete_with_confirmation_kicks_subscribers_live(
    connect, alice, bob, community, films
):
    await db(say)(films, bob, "soon gone")
    reader = await connect(bob)
    await reader.subscribe(films.id)
    client = await db(client_for)(alice)
    await db(client.post)(settings_url(films), {"action": "delete", "confirm": "wrong"})
    assert await db(Channel.objects.filter(id=films.id).exists)()
    response = await db(client.post)(settings_url(films), {"action": "delete", "confirm": "#films"})
    assert response["Location"] == "/c/photography/manage/"
    frame = await reader.recv_type("unsubscribed")
    assert frame == {"type": "unsubscribed", "channel": films.id, "reason": "deleted"}
    assert not await db(Channel.objects.filter(id=films.id).exists)()
    entry = await db(lambda: AuditEntry.objects.get(action="channel.delete"))()
    assert entry.detail["name"] == "films" and entry.detail["messages"] == 1
    gone = await as_user(bob, "get", "/c/photography/films/")
    assert gone.status_code == 404


def test_general_may_be_renamed_but_the_last_open_channel_stays(alice, bob, community, general):
    client = client_for(alice)
    client.post(settings_url(general), {"action": "rename", "name": "lobby"})
    general.refresh_from_db()
    assert general.name == "lobby"
    assert client_for(bob).get("/c/photography/").headers["Location"] == "/c/photography/lobby/"
    response = client.post(
        settings_url(general), {"action": "delete", "confirm": "lobby"}, follow=True
    )
    assert "last open channel" in response.content.decode()
    client.post(settings_url(general), {"action": "archive"})
    general.refresh_from_db()
    assert Channel.objects.filter(id=general.id).exists() and not general.is_archived


# --- Who may do what ------------------------------------------------------------------------

ACTORS = ["anonymous", "non-member", "member", "moderator", "owner", "site moderator", "superuser"]
OWNERS = {"owner", "site moderator", "superuser"}
STAFF = {"moderator", *OWNERS}
MAY = {"rename": STAFF, "topic": STAFF, "archive": STAFF, "unarchive": STAFF, "delete": OWNERS}


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("action", sorted(MAY))
def test_channel_authorization_table(
    actor, action, make_user, alice, bob, mallory, community, films, site_moderator, superuser
):
    mo = make_user("mo")
    membership_join(community=community, user=mo)
    membership_set_role(community=community, user=mo, role="moderator", by=alice)
    if action == "unarchive":
        channel_archive(channel=films, by=alice)
    people = {
        "anonymous": None,
        "non-member": mallory,
        "member": bob,
        "moderator": mo,
        "owner": alice,
        "site moderator": site_moderator,
        "superuser": superuser,
    }
    fields = {
        "rename": {"action": "rename", "name": "movies"},
        "topic": {"action": "topic", "topic": "New"},
        "archive": {"action": "archive"},
        "unarchive": {"action": "unarchive"},
        "delete": {"action": "delete", "confirm": "films"},
    }[action]

    def state():
        row = (
            Channel.objects.filter(id=films.id).values_list("name", "topic", "archived_at").first()
        )
        return (
            row,
            ChannelMember.objects.filter(channel_id=films.id).count(),
            AuditEntry.objects.count(),
        )

    before = state()
    user = people[actor]
    client = client_for(user) if user is not None else Client()
    client.post("/c/photography/films/settings/", fields)
    after = state()
    if actor in MAY[action]:
        assert after != before and after[2] == before[2] + 1, (actor, action)
        assert AuditEntry.objects.order_by("-id").first().actor == user
    else:
        assert after == before, (actor, action)
    assert Membership.objects.filter(community=community).count() == 3
