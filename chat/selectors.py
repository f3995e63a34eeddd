"""Reads about channels and messages. Each fetch checks that the user may see what it returns."""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from accounts.models import User
from chat.models import (
    Attachment,
    Channel,
    ChannelMember,
    HeldMessage,
    Mention,
    Message,
    Report,
)
from communities.models import AuditEntry, Community
from communities.policy import banned_by_channel, can_moderate, raise_banned
from hobbies.errors import NotFound
from hobbies.queries import Compiled, first_together, first_together_async

MAX_MENTIONS = 25


def member_channel_query(user_id: int, channel_id: int) -> QuerySet[Channel]:
    """The channel, if the user is its member, with their standing in its community (the read
    `channel_for_member` makes, compiled once below)."""
    return (
        Channel.objects.visible_to(user_id)
        .select_related("community")
        .annotate(
            viewer_role=F("community__memberships__role"),
            viewer_timeout_until=F("community__memberships__timeout_until"),
        )
        .filter(id=channel_id)
    )


# Every send, subscribe and history page makes this read: its SQL is built once.
_MEMBER_CHANNEL: Compiled[Channel] = Compiled(member_channel_query, int, int)


class Sender(NamedTuple):
    """Who sends, as everyone will see them now (a socket's user object may be hours old), and
    the id and channel of the message they already sent with this client_id, if any."""

    author: User
    sent: tuple[int, int] | None


def sender_query(user_id: int, client_id: uuid.UUID) -> QuerySet[User]:
    sent = Message.objects.filter(author=OuterRef("pk"), client_id=client_id)
    return (
        User.objects.select_related("profile")
        .annotate(
            sent_id=Subquery(sent.values("id")[:1]),
            sent_channel_id=Subquery(sent.values("channel_id")[:1]),
        )
        .filter(pk=user_id)
    )


_SENDER: Compiled[User] = Compiled(sender_query, int, Message._meta.get_field("client_id"))


def _sender(row: Any) -> Sender:
    if row is None:
        raise NotFound("No such user.")
    return Sender(row, (row.sent_id, row.sent_channel_id) if row.sent_id is not None else None)


def sender_for(user: User, client_id: uuid.UUID) -> Sender:
    """The read a send makes before its transaction: one query."""
    return _sender(_SENDER.first(user.pk, client_id))


def channel_for_sender(
    user: User, channel_id: int | None, client_id: uuid.UUID
) -> tuple[Channel, Sender]:
    """`channel_for_member` and `sender_for` at once: one round trip on PostgreSQL (a socket's
    send makes both reads before its transaction)."""
    if channel_id is None or not user.is_authenticated:
        raise NotFound("No such channel.")
    channel, row = first_together(
        (_MEMBER_CHANNEL, (user.pk, channel_id)), (_SENDER, (user.pk, client_id))
    )
    return _member_channel(user, channel_id, channel), _sender(row)


# The reads a send makes before its transaction (compiled before a send runs them from the
# event loop).
SEND_READS = (_MEMBER_CHANNEL, _SENDER)


async def channel_for_sender_from_loop(
    user: User, channel_id: int, client_id: uuid.UUID
) -> tuple[Channel, Sender] | None:
    """`channel_for_sender` from the event loop (`hobbies.loopdb`), the reads compiled
    already: the same round trip. None where the channel was not found: whether the user was
    banned from it takes another read, which `channel_for_sender` makes."""
    channel, row = await first_together_async(
        (_MEMBER_CHANNEL, (user.pk, channel_id)), (_SENDER, (user.pk, client_id))
    )
    if channel is None:
        return None
    return _member_channel(user, channel_id, channel), _sender(row)


def channel_for_member(user: User, channel_id: int | None) -> Channel:
    """The channel with this id, if the user is one of its members; else `NotFound`.

    Used by views, the API and the socket alike. A channel the user may not see is reported as
    not found, never as forbidden, so its existence does not leak.

    The fetch also reads the user's standing in the community (their membership's role and
    timeout, from the row it joins anyway) as `channel.viewer_standing`, so a send needs no
    query of its own for it (`chat.screening.screen_send`).
    """
    if channel_id is None or not user.is_authenticated:
        raise NotFound("No such channel.")
    return _member_channel(user, channel_id, _MEMBER_CHANNEL.first(user.pk, channel_id))


def _member_channel(user: User, channel_id: int, channel: Channel | None) -> Channel:
    if channel is None:
        _refuse_banned(user, channel_id)
        raise NotFound("No such channel.")
    row: Any = channel
    channel.viewer_standing = (row.viewer_role, row.viewer_timeout_until)
    return channel


def _refuse_banned(user: User, channel_id: int | None) -> None:
    """A banned user is told so (with the end of the ban), not "not found": the channel was
    theirs to see until the ban. Asked only when a fetch found nothing."""
    ban = banned_by_channel(user, channel_id) if channel_id is not None else None
    if ban is not None:
        raise_banned(ban)


def channel_by_name_for_member(user: User, slug: str, name: str) -> Channel:
    channel = (
        Channel.objects.visible_to(user)
        .select_related("community")
        .filter(community__slug=slug, name=name)
        .first()
    )
    if channel is None:
        found = Channel.objects.filter(community__slug=slug, name=name).values_list("id", flat=True)
        _refuse_banned(user, found.first())
        raise NotFound("No such channel.")
    return channel


def message_for_member(user: User, message_id: int | None) -> Message:
    """The message with this id, if the user is a member of its channel; else `NotFound`."""
    pk = message_id
    if pk is None or not user.is_authenticated:
        raise NotFound("No such message.")
    message = (
        Message.objects.with_related()
        .filter(id=pk, channel__in=Channel.objects.visible_to(user))
        .first()
    )
    if message is None:
        channel_id = Message.objects.filter(id=pk).values_list("channel_id", flat=True).first()
        _refuse_banned(user, channel_id)
        raise NotFound("No such message.")
    return message


# --- Moderation -----------------------------------------------------------------------------


def message_for_moderator(user: User, message_id: int | None) -> Message:
    """A message of a community the user moderates (any channel, private ones too, member of
    it or not); else `NotFound`, so others learn nothing of it."""
    if message_id is None or not user.is_authenticated:
        raise NotFound("No such message.")
    message = (
        Message.objects.with_related()
        .select_related("channel__community", "deleted_by")
        .filter(id=message_id)
        .first()
    )
    if message is None or not can_moderate(user, message.channel.community_id):
        raise NotFound("No such message.")
    return message


def channel_for_settings(user: User, slug: str, name: str) -> Channel:
    """A channel's settings page: its members, and the community's moderators (site moderators
    too, member or not, private channels too); else `NotFound`."""
    channel = (
        Channel.objects.select_related("community").filter(community__slug=slug, name=name).first()
    )
    if channel is not None and user.is_authenticated and can_moderate(user, channel.community_id):
        return channel
    return channel_by_name_for_member(user, slug, name)


def channel_for_moderator(user: User, channel_id: int | None) -> Channel:
    if channel_id is None or not user.is_authenticated:
        raise NotFound("No such channel.")
    channel = Channel.objects.select_related("community").filter(id=channel_id).first()
    if channel is None or not can_moderate(user, channel.community_id):
        raise NotFound("No such channel.")
    return channel


def held_for_author(user: User, client_id: uuid.UUID) -> HeldMessage:
    """The user's own message that a channel flow holds or decided, by its `client_id`; else
    `NotFound` (nobody but its author ever learns of one)."""
    held = HeldMessage.objects.filter(
        author_id=user.id, client_id=client_id, kind=HeldMessage.Kind.FLOW
    ).first()
    if held is None:
        raise NotFound("No such message.")
    return held


def held_for_moderator(user: User, held_id: int | None) -> HeldMessage:
    held = (
        HeldMessage.objects.select_related("channel__community", "author")
        .filter(id=held_id or 0, kind=HeldMessage.Kind.REVIEW)
        .first()
    )
    if (
        held is None
        or not user.is_authenticated
        or not can_moderate(user, held.channel.community_id)
    ):
        raise NotFound("No such held message.")
    return held


def reported_messages(community: Community) -> list[dict[str, Any]]:
    """The queue: each message with open reports, with its reporters and the messages around
    it (three before, one after), oldest report first."""
    open_reports = list(
        Report.objects.filter(community=community, resolved_at__isnull=True)
        .select_related("reporter")
        .order_by("id")
    )
    by_message: dict[int, list[Report]] = {}
    for report in open_reports:
        by_message.setdefault(report.message_id, []).append(report)
    messages = Message.objects.with_related().select_related("deleted_by").in_bulk(by_message)
    items = []
    for message_id, reports in by_message.items():
        message = messages[message_id]
        around = Message.objects.with_related().filter(channel_id=message.channel_id)
        before = list(around.filter(seq__lt=message.seq).order_by("-seq")[:3])[::-1]
        after = list(around.filter(seq__gt=message.seq).order_by("seq")[:1])
        items.append(
            {
                "message": message,
                "reports": reports,
                "count": len(reports),
                "reasons": sorted({r.get_reason_display() for r in reports}),
                "context": [*before, message, *after],
            }
        )
    return items


def held_messages(community: Community) -> list[HeldMessage]:
    return list(
        HeldMessage.objects.filter(
            channel__community=community,
            kind=HeldMessage.Kind.REVIEW,
            status=HeldMessage.Status.PENDING,
        )
        .select_related("channel", "author")
        .order_by("id")
    )


def audit_log(
    community: Community, *, before: int | None = None, limit: int = 100
) -> list[AuditEntry]:
    entries = AuditEntry.objects.filter(community=community).select_related("actor", "target")
    if before is not None:
        entries = entries.filter(id__lt=before)
    return list(entries.order_by("-id")[:limit])


def attachment_for_member(user: User, attachment_id: uuid.UUID) -> Attachment:
    """An attachment of a live message in a channel the user is a member of; else `NotFound`.

    The one check in front of every download and thumbnail, whatever URL the user holds.
    """
    attachment_uuid = attachment_id
    if not user.is_authenticated:
        raise NotFound("No such attachment.")
    attachment = (
        Attachment.objects.servable()
        .filter(id=attachment_uuid, message__channel__in=Channel.objects.visible_to(user))
        .first()
    )
    if attachment is None:
        raise NotFound("No such attachment.")
    return attachment


def channel_member(user: User, channel: Channel) -> ChannelMember | None:
    return ChannelMember.objects.filter(user=user, channel=channel).first()


def channel_members(channel: Channel) -> list[ChannelMember]:
    return list(
        ChannelMember.objects.filter(channel=channel)
        .select_related("user__profile")
        .order_by("user__username")
    )


def channels_for_user(
    user: User, community_id: int | None = None, *, archived: bool = False
) -> list[dict[str, Any]]:
    """The user's channels with unread and mention counts, in two queries. Archived channels
    are left out (`archived=True`: only those)."""
    members = ChannelMember.objects.filter(
        user=user,
        channel__community__memberships__user=user,
        channel__archived_at__isnull=not archived,
    ).select_related("channel__community")
    if community_id is not None:
        members = members.filter(channel__community_id=community_id)
    unread = (
        Message.objects.filter(channel=OuterRef("channel"), id__gt=OuterRef("last_read_id"))
        .live()
        .exclude(author=user)
        .order_by()
        .values("channel")
        .annotate(n=Count("id"))
        .values("n")
    )
    mentions = (
        Mention.objects.filter(
            user=user, channel=OuterRef("channel"), message__id__gt=OuterRef("last_read_id")
        )
        .filter(message__deleted_at__isnull=True)
        .order_by()
        .values("channel")
        .annotate(n=Count("id"))
        .values("n")
    )
    rows = members.annotate(
        unread=Coalesce(Subquery(unread), 0), mention_count=Coalesce(Subquery(mentions), 0)
    ).order_by("channel__community__name", "channel__name")
    return [
        {
            "id": m.channel.id,
            "name": m.channel.name,
            "topic": m.channel.topic,
            "kind": m.channel.kind,
            "archived": m.channel.archived_at is not None,
            "community": {
                "id": m.channel.community.id,
                "slug": m.channel.community.slug,
                "name": m.channel.community.name,
            },
            "unread": m.unread,
            "mentions": m.mention_count,
            "last_read_id": m.last_read_id,
            "last_id": m.channel.last_message_id,
            "url": m.channel.get_absolute_url(),
        }
        for m in rows
    ]


class StoredRow(NamedTuple):
    """A message's position and stored rendering (valid while `payload_version == version`)."""

    id: int
    seq: int
    version: int
    payload_version: int
    payload_json: str


STORED_FIELDS = StoredRow._fields


def _keyset_page(
    qs: QuerySet[Any], before: int | None, after: int | None, limit: int
) -> tuple[list[Any], bool]:
    limit = max(1, min(limit, 200))
    if after is not None:
        rows = list(qs.filter(id__gt=after).order_by("id")[: limit + 1])
        return rows[:limit], len(rows) > limit
    if before is not None:
        qs = qs.filter(id__lt=before)
    rows = list(qs.order_by("-id")[: limit + 1])
    return list(reversed(rows[:limit])), len(rows) > limit


def messages_page(
    channel: Channel, *, before: int | None = None, after: int | None = None, limit: int = 50
) -> tuple[list[Message], bool]:
    """A page of messages in id order, by keyset on id.

    With `after`, the oldest `limit` messages newer than it; otherwise the newest `limit`
    messages older than `before` (or the newest of all). `has_more` says whether more exist
    beyond the page in the direction read.
    """
    qs = Message.objects.with_related().filter(channel=channel)
    return _keyset_page(qs, before, after, limit)


def stored_page(
    channel: Channel, *, before: int | None = None, after: int | None = None, limit: int = 50
) -> tuple[list[StoredRow], bool]:
    """The page `messages_page` reads, as positions and stored renderings only."""
    qs = Message.objects.filter(channel=channel).values_list(*STORED_FIELDS, named=True)
    return _keyset_page(qs, before, after, limit)


def stored_after(
    channel: Channel, *, seq: int | None = None, since: int | None = None, limit: int
) -> tuple[list[StoredRow], bool]:
    """Messages after position `seq` (or after message id `since`), in order, as positions and
    stored renderings only; `truncated` if more than `limit`."""
    qs = Message.objects.filter(channel=channel)
    qs = qs.filter(seq__gt=seq) if seq is not None else qs.filter(id__gt=since or 0)
    rows = list(qs.order_by("seq").values_list(*STORED_FIELDS, named=True)[: limit + 1])
    return rows[:limit], len(rows) > limit


class Head(NamedTuple):
    seq: int  # the newest message's position
    removals: int  # moves each time a member is taken out


def channel_heads(channel_ids: list[int]) -> dict[int, Head]:
    """The newest message position and removal count of each channel that still exists (the
    hub's checks; no permission check: they decide only whether to wake or drop sockets that
    already subscribed)."""
    rows = Channel.objects.filter(id__in=channel_ids).values_list("id", "last_seq", "removals")
    return {channel_id: Head(seq, removals) for channel_id, seq, removals in rows}


def channel_members_present(pairs: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Which of these (channel id, user id) pairs may still see the channel: the rule of
    `Channel.objects.visible_to`, for many users at once (the hub's membership check)."""
    if not pairs:
        return set()
    rows = ChannelMember.objects.filter(
        channel_id__in={channel_id for channel_id, _ in pairs},
        user_id__in={user_id for _, user_id in pairs},
        channel__community__memberships__user_id=F("user_id"),
    ).values_list("channel_id", "user_id")
    return set(rows) & pairs


def mentionable_members(channel: Channel, usernames: set[str]) -> dict[str, tuple[int, str]]:
    """Channel members among `usernames` (compared without case), as the renderer wants them."""
    names = sorted(usernames)[:MAX_MENTIONS]
    if not names:
        return {}
    match = Q()
    for name in names:
        match |= Q(user__username__iexact=name)
    rows = ChannelMember.objects.filter(channel=channel).filter(match)
    return {
        username.lower(): (user_id, username)
        for user_id, username in rows.values_list("user_id", "user__username")
    }
