"""Every change to channels, messages, reactions and read markers goes through here."""

from __future__ import annotations

import asyncio
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import emoji as emoji_data
import psycopg
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import User
from chat import events, policy, screening
from chat.attachments import attachment_ids_check, attachments_claim
from chat.backends import get_backend, inbound
from chat.backends.base import MessageDenied, MessagePending
from chat.dbthreads import db
from chat.hub import encode
from chat.models import (
    Attachment,
    Channel,
    ChannelMember,
    HeldMessage,
    Mention,
    Message,
    MessageRevision,
    Reaction,
)
from chat.payloads import attachment_payload, flow_status_payload, message_payload
from chat.rendering import mention_candidates, render_body
from chat.selectors import (
    SEND_READS,
    Sender,
    channel_for_member,
    channel_for_sender_from_loop,
    mentionable_members,
    sender_for,
)
from communities.models import AuditEntry, Community, Membership
from communities.policy import can_moderate
from communities.services import audit_record
from hobbies import loopdb, metrics, ratelimit
from hobbies.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, TooLong
from hobbies.queries import (
    Compiled,
    CompiledUpdate,
    Statement,
    insert_compiled,
    insert_statement,
    locked_write,
    locked_write_async,
    locked_write_fits,
    mark_saved,
    run_together,
    update_statement,
)

MAX_EMOJI_LENGTH = 16


# --- Channels -------------------------------------------------------------------------------


def channel_create(
    *,
    community: Community,
    name: str,
    by: User | None,
    topic: str = "",
    kind: str = Channel.Kind.OPEN,
) -> Channel:
    """Create a channel. `by` must moderate the community (None: the system, on creation)."""
    if by is not None and not can_moderate(by, community):
        raise Forbidden("Only moderators can create channels.")
    slug = _clean_channel_name(name)
    if kind not in Channel.Kind.values:
        raise Invalid("Unknown channel kind.")
    if len(topic) > 250:
        raise TooLong("A topic has at most 250 characters.")
    with transaction.atomic():
        if Channel.objects.filter(community=community, name=slug).exists():
            raise Conflict(f"#{slug} already exists in this community.")
        channel = Channel.objects.create(community=community, name=slug, topic=topic, kind=kind)
        get_backend().create_channel(channel)
        if kind == Channel.Kind.PRIVATE:
            if by is not None:
                _channel_member_add(channel, by)
        else:
            for user in User.objects.filter(memberships__community=community):
                _channel_member_add(channel, user)
        if by is not None:
            audit_record(
                community=community,
                by=by,
                action=AuditEntry.Action.CHANNEL_CREATE,
                detail={"channel": channel.id, "name": slug, "kind": kind},
            )
    return channel


def _clean_channel_name(name: str) -> str:
    slug = slugify(name)[:50]
    if not slug:
        raise Invalid("A channel needs a name made of letters, digits or dashes.")
    return slug


def _channel_changed(channel: Channel) -> None:
    """After commit, tell the channel's subscribers what it is now (`channel.updated`)."""
    channel_id = channel.id

    def build() -> dict[str, Any]:
        now = Channel.objects.select_related("community").get(id=channel_id)
        return {
            "type": "channel.updated",
            "channel": {
                "id": now.id,
                "name": now.name,
                "topic": now.topic,
                "kind": now.kind,
                "archived": now.archived_at is not None,
                "url": now.get_absolute_url(),
            },
        }

    events.broadcast_on_commit(events.channel_key(channel_id), build)


def channel_update(*, channel: Channel, by: User, topic: str) -> Channel:
    if not policy.can_manage_channel(by, channel):
        raise Forbidden("Only moderators can change the topic.")
    if len(topic) > 250:
        raise TooLong("A topic has at most 250 characters.")
    if topic == channel.topic:
        return channel
    with transaction.atomic():
        before = channel.topic
        channel.topic = topic
        channel.save(update_fields=["topic"])
        audit_record(
            community=channel.community_id,
            by=by,
            action=AuditEntry.Action.CHANNEL_TOPIC,
            detail={"channel": channel.id, "name": channel.name, "before": before, "topic": topic},
        )
        get_backend().update_channel(channel)
        _channel_changed(channel)
    return channel


def channel_rename(*, channel: Channel, by: User, name: str) -> Channel:
    """Rename a channel (`#general` too); its old address stops working."""
    if not policy.can_manage_channel(by, channel):
        raise Forbidden("Only moderators can rename channels.")
    slug = _clean_channel_name(name)
    if slug == channel.name:
        return channel
    with transaction.atomic():
        if Channel.objects.filter(community_id=channel.community_id, name=slug).exists():
            raise Conflict(f"#{slug} already exists in this community.")
        before = channel.name
        channel.name = slug
        channel.save(update_fields=["name"])
        get_backend().update_channel(channel)
        audit_record(
            community=channel.community_id,
            by=by,
            action=AuditEntry.Action.CHANNEL_RENAME,
            detail={"channel": channel.id, "before": before, "name": slug},
        )
        _channel_changed(channel)
    return channel


def _check_not_last_open(channel: Channel, what: str) -> None:
    """A community keeps one open channel that is not archived (new members land there)."""
    if channel.kind != Channel.Kind.OPEN or channel.archived_at is not None:
        return
    others = Channel.objects.filter(
        community_id=channel.community_id, kind=Channel.Kind.OPEN, archived_at__isnull=True
    ).exclude(id=channel.id)
    if not others.exists():
        raise Invalid(f"This is the community's last open channel: it cannot be {what}.")


def channel_archive(*, channel: Channel, by: User) -> Channel:
    """Make a channel read-only (no posts, reactions or edits) and leave it out of the channel
    list; members keep reading it."""
    if not policy.can_manage_channel(by, channel):
        raise Forbidden("Only moderators can archive channels.")
    if channel.archived_at is not None:
        raise Conflict("This channel is already archived.")
    with transaction.atomic():
        _check_not_last_open(Channel.objects.select_for_update().get(id=channel.id), "archived")
        channel.archived_at = timezone.now()
        channel.save(update_fields=["archived_at"])
        get_backend().archive_channel(channel)
        audit_record(
            community=channel.community_id,
            by=by,
            action=AuditEntry.Action.CHANNEL_ARCHIVE,
            undo=AuditEntry.Action.CHANNEL_UNARCHIVE,
            detail={"channel": channel.id, "name": channel.name},
        )
        _channel_changed(channel)
    return channel


def channel_unarchive(*, channel: Channel, by: User) -> Channel:
    if not policy.can_manage_channel(by, channel):
        raise Forbidden("Only moderators can unarchive channels.")
    if channel.archived_at is None:
        raise Conflict("This channel is not archived.")
    with transaction.atomic():
        channel.archived_at = None
        channel.save(update_fields=["archived_at"])
        get_backend().update_channel(channel)
        audit_record(
            community=channel.community_id,
            by=by,
            action=AuditEntry.Action.CHANNEL_UNARCHIVE,
            detail={"channel": channel.id, "name": channel.name},
        )
        _channel_changed(channel)
    return channel


def channel_delete(*, channel: Channel, by: User) -> None:
    """Delete a channel with its messages (owners). Its subscribers' sockets drop it at once
    (`unsubscribed` with reason `deleted`). The community's last open channel stays."""
    if not policy.can_delete_channel(by, channel):
        raise Forbidden("Only owners can delete channels.")
    with transaction.atomic():
        _check_not_last_open(Channel.objects.select_for_update().get(id=channel.id), "deleted")
        members = ChannelMember.objects.filter(channel=channel)
        count = members.count()
        _channel_members_remove(members, reason="deleted")
        audit_record(
            community=channel.community_id,
            by=by,
            action=AuditEntry.Action.CHANNEL_DELETE,
            detail={
                "channel": channel.id,
                "name": channel.name,
                "messages": channel.last_seq,
                "members": count,
            },
        )
        get_backend().archive_channel(channel)
        channel.delete()


def check_writable(channel: Channel) -> None:
    if not policy.is_writable(channel):
        raise Forbidden("This channel is archived: it can be read, not written to.")


def channel_member_add(*, channel: Channel, user: User, by: User) -> ChannelMember:
    """Invite a community member into a private channel (moderators, or its members)."""
    if not Membership.objects.filter(community_id=channel.community_id, user=user).exists():
        raise Invalid("Only members of the community can be added to its channels.")
    if not policy.can_add_member(by, channel):
        raise Forbidden("You cannot add members to this channel.")
    with transaction.atomic():
        return _channel_member_add(channel, user)


def channel_member_remove(*, channel: Channel, user: User, by: User) -> None:
    """Remove a user from a private channel; their sockets stop receiving it at once."""
    if not policy.can_remove_member(by, channel, user):
        raise Forbidden("Only moderators can remove others from a channel.")
    if channel.kind != Channel.Kind.PRIVATE:
        raise Invalid("Open channels are left by leaving the community.")
    with transaction.atomic():
        _channel_members_remove(ChannelMember.objects.filter(channel=channel, user=user))


def _channel_member_add(channel: Channel, user: User) -> ChannelMember:
    member, created = ChannelMember.objects.get_or_create(
        channel=channel, user=user, defaults={"last_read_id": channel.last_message_id}
    )
    if created:
        get_backend().add_member(channel, user)
    return member


def community_channels_join(*, community: Community, user: User) -> None:
    """Give a new community member every open and announcement channel (inside their join)."""
    for channel in community.channels.exclude(kind=Channel.Kind.PRIVATE):
        _channel_member_add(channel, user)


def community_channels_leave(*, community: Community, user: User) -> None:
    """Take a leaving member out of every channel of the community (inside their leave)."""
    _channel_members_remove(ChannelMember.objects.filter(channel__community=community, user=user))


def _channel_members_remove(members: QuerySet[ChannelMember], *, reason: str = "removed") -> None:
    """Take members out of channels; after commit their sockets drop those subscriptions and
    say `unsubscribed` with `reason` (`removed`, or `deleted` when the channel is gone)."""
    backend = get_backend()
    for member in members.select_related("channel", "user"):
        backend.remove_member(member.channel, member.user)
        member.delete()
        # The record the hubs' membership check reads if the kick below never arrives.
        Channel.objects.filter(id=member.channel_id).update(removals=F("removals") + 1)
        events.control_on_commit(
            events.user_key(member.user_id), "kick", channel=member.channel_id, reason=reason
        )


# --- Messages -------------------------------------------------------------------------------


def _clean_body(body: str, *, allow_empty: bool = False) -> str:
    body = body.replace("\r\n", "\n").strip()
    if not body and not allow_empty:
        raise Invalid("A message cannot be empty.")
    if len(body) > settings.CHAT_MESSAGE_MAX_LENGTH:
        raise TooLong(f"A message has at most {settings.CHAT_MESSAGE_MAX_LENGTH} characters.")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in body):
        raise Invalid("A message cannot contain control characters.")
    return body


@dataclass(frozen=True)
class Sent:
    """What a send did: the message, whether this call created it (a retry did not), and its
    payload as everyone was sent it (the sender's acknowledgement reuses it)."""

    message: Message
    created: bool
    payload: dict[str, Any]


def message_send(
    *,
    channel: Channel,
    author: User,
    body: str,
    client_id: uuid.UUID,
    reply_to: int | None = None,
    attachments: Sequence[uuid.UUID] = (),
    screen: bool = True,
    external_id: str = "",
    sender: Sender | None = None,
) -> Sent:
    """Post a message.

    Idempotent on `(author, client_id)`: a retry returns the first message and broadcasts
    nothing. The caller has fetched `channel` with `channel_for_member`. `attachments` lists
    ids of the author's confirmed uploads; a message with attachments may have no text.
    `screen=False`: a held message a moderator approved (the word filter already ran).
    `external_id`: a message another client posted to the messaging service, stored by its
    bridge (inside `chat.backends.inbound()`; no rate limits: it is already out there), or one
    a channel flow held and now released (`message_flow_resolve`). `sender`: what
    `sender_for(author, client_id)` read, if the caller read it already (with the channel, in
    one round trip: `channel_for_sender`).

    Raises `MessagePending` when the messaging service holds the message for a channel flow:
    nothing is in the channel then, the author's `HeldMessage` (kind `flow`) is (docs/chime.md).
    """
    cid = client_id
    # The author as everyone will see them now, and whether this client_id was sent already.
    shown_author, sent_before = sender or sender_for(author, cid)
    if sent_before is not None:
        existing = _resent(sent_before, channel)
        return Sent(existing, False, message_payload(existing))
    attachment_ids = attachment_ids_check(attachments)
    text = _clean_body(body, allow_empty=bool(attachment_ids))
    check_writable(channel)
    if not policy.can_post(author, channel):
        raise Forbidden("Only moderators post in announcement channels.")
    slowed = screen and screening.screen_send(
        channel=channel, author=author, text=text, client_id=cid, reply_to=reply_to
    )
    parent = None
    if reply_to is not None:
        parent = (
            Message.objects.select_related("author__profile")
            .filter(id=reply_to, channel=channel)
            .first()
        )
        if parent is None:
            raise NotFound("The message you reply to is not in this channel.")
    if not external_id:
        ratelimit.hit_all(_send_limits(author, channel))
    rendered = render_body(text, mentionable_members(channel, mention_candidates(text)))
    mentioned = [uid for uid in rendered.mentioned_ids if uid != author.id]
    alias = Message.objects.db

    try:
        if (
            locked_write_fits(alias)
            and not (mentioned or attachment_ids or external_id or slowed)
            and get_backend().name == "local"
        ):
            # A plain message (the most of them) on PostgreSQL, in two round trips: the
            # channel's row lock with the message's id, then the insert, the updates and the
            # commit. The lock is held over one round trip.
            write = _plain_write(
                channel, author, shown_author, cid, text, rendered.html, parent, alias
            )
            message, payload = locked_write(_CHANNEL_LOCK_AND_ID, (channel.id,), write)
            mark_saved(message, alias)
            _broadcast_message(message, "message.new", payload=payload)  # committed: sent now
            return Sent(message, True, payload)
        with transaction.atomic():
            # The row lock orders sends per channel: ids commit in increasing order and each
            # message takes the next position (`seq`), so positions have no gaps.
            locked = _CHANNEL_LOCK.first(channel.id)
            if locked is None:
                raise NotFound("No such channel.")
            if slowed:
                screening.slow_mode_check(channel=locked, author=author)
            message = _new_message(locked, author, cid, text, rendered.html, parent)
            message.save(force_insert=True, using=alias)
            Mention.objects.bulk_create(
                Mention(message=message, user_id=uid, channel=locked) for uid in mentioned
            )
            claimed = attachments_claim(message=message, author=author, ids=attachment_ids)
            # Inside the lock and the transaction: a refusal or an outage rolls the message
            # back (the author retries with the same client_id); docs/chime.md.
            external_id = external_id or get_backend().send_message(message)
            if external_id:
                message.external_id = external_id
                message.save(update_fields=["external_id"])
            payload, stored, updates = _placed(message, channel, author, shown_author, claimed)
            updates.append((_STORE_PAYLOAD, (stored, message.id, message.version)))
            run_together(*updates)  # one round trip on PostgreSQL
            _broadcast_message(message, "message.new", payload=payload)
    except IntegrityError:
        # The same client_id raced us; the first one won.
        first = _existing(author, cid, channel)
        if first is None:
            raise
        return Sent(first, False, message_payload(first))
    except MessagePending as pending:
        # Rolled back: no row, no position, no mentions, attachments unclaimed. Kept aside for
        # its author until the channel flow decides.
        held = _flow_hold(
            pending,
            channel=channel,
            author=author,
            text=text,
            client_id=cid,
            reply_to=reply_to,
            attachments=attachment_ids,
        )
        pending.held_as(held.id)
        raise
    return Sent(message, True, payload)


def _new_message(
    locked: Channel, author: User, cid: uuid.UUID, text: str, html: str, parent: Message | None
) -> Message:
    # At the channel's next position: under its row lock.
    return Message(
        channel=locked,
        author=author,
        client_id=cid,
        seq=locked.last_seq + 1,
        body=text,
        body_html=html,
        reply_to=parent,
    )


def _placed(
    message: Message,
    channel: Channel,
    author: User,
    shown_author: User,
    claimed: Sequence[Attachment] = (),
) -> tuple[Any, str, list[Any]]:
    """The payload of the message, built from what is in hand (nothing to read back); it as
    stored (replays and history read it instead of rendering); and the updates that go into
    the message's commit: the channel's head and the author's read marker."""
    for moved in (message.channel, channel):
        moved.last_message_id, moved.last_seq = message.id, message.seq
    message.author = shown_author
    payload = message_payload(
        message, reactions=[], attachments=[attachment_payload(a) for a in claimed]
    )
    return (
        payload,
        encode(payload),
        [
            (_CHANNEL_HEAD, (message.id, message.seq, channel.id)),
            (_AUTHOR_READ, (message.id, channel.id, author.id)),
        ],
    )


def _plain_write(
    channel: Channel,
    author: User,
    shown_author: User,
    cid: uuid.UUID,
    text: str,
    html: str,
    parent: Message | None,
    alias: str,
) -> Callable[[Channel | None], tuple[list[Statement], tuple[Message, Any]]]:
    """What a plain message (a reply perhaps) writes once its channel is locked
    (`locked_write`): the message, inserted with its stored rendering (no second version of its
    row), and the updates."""

    def write(locked: Channel | None) -> tuple[list[Statement], tuple[Message, Any]]:
        if locked is None:
            raise NotFound("No such channel.")
        message = _new_message(locked, author, cid, text, html, parent)
        message.id = locked.next_message_id  # type: ignore[attr-defined]
        message.created_at = timezone.now()  # (as the field's auto_now_add would)
        payload, stored, updates = _placed(message, channel, author, shown_author)
        message.payload_json, message.payload_version = stored, message.version
        statements = [insert_statement(message, alias, as_is=True)]
        statements += [update_statement(update, *values) for update, values in updates]
        return statements, (message, payload)

    return write


async def message_send_from_loop(
    *, author: User, channel_id: int | None, body: str, client_id: uuid.UUID
) -> Sent | None:
    """`message_send` of a plain message (text that names no one, no reply, no attachments)
    on PostgreSQL, from the event loop (`hobbies.loopdb`): the same reads, checks and writes
    in the same order, with no thread hand-off between them (docs/performance.md, eighth
    round). Errors are those `message_send` raises.

    None where the send needs more than that: a retry of a `client_id`, a channel not found
    (or one the user was banned from), slow mode, a held word, another messaging backend, a
    client_id that raced another send. The caller then runs `message_send` in a thread, which
    reads again and decides.

    The write and its broadcast run on, shielded, if the caller is cancelled (its socket
    closed): a message that commits is always announced.
    """
    alias = Message.objects.db
    if channel_id is None or not loopdb.usable(alias) or get_backend().name != "local":
        return None
    if mention_candidates(body):
        return None
    if not _plain_send_compiled(alias):
        await db(_compile_plain_send)(alias)
    found = await channel_for_sender_from_loop(author, channel_id, client_id)
    if found is None:
        return None
    channel, (shown_author, sent_before) = found
    if sent_before is not None:
        return None
    text = _clean_body(body)
    check_writable(channel)
    standing = channel.viewer_standing  # (read with the channel)
    if standing is None:
        return None
    if not policy.can_post(author, channel, role=standing[0]):
        raise Forbidden("Only moderators post in announcement channels.")
    if screening.screen_needs_database(channel, text):
        return None
    screening.screen_send(
        channel=channel, author=author, text=text, client_id=client_id, reply_to=None
    )
    await ratelimit.hit_all_async(_send_limits(author, channel))
    rendered = render_body(text)
    write = _plain_write(channel, author, shown_author, client_id, text, rendered.html, None, alias)

    async def commit() -> Sent | None:
        try:
            message, payload = await locked_write_async(_CHANNEL_LOCK_AND_ID, (channel.id,), write)
        except psycopg.IntegrityError:
            return None  # the same client_id raced us: `message_send` finds the first one
        mark_saved(message, alias)
        _broadcast_message(message, "message.new", payload=payload, committed=True)
        return Sent(message, True, payload)

    committing = asyncio.ensure_future(commit())
    _committing.add(committing)
    committing.add_done_callback(_committing.discard)
    return await asyncio.shield(committing)


# Commits running on after their caller was cancelled (kept referenced until done).
_committing: set[asyncio.Future[Sent | None]] = set()


def _send_limits(author: User, channel: Channel) -> list[tuple[str, str, ratelimit.Rate]]:
    return [
        ("msg-user", str(author.id), settings.RATE_LIMIT_MESSAGES_USER),
        ("msg-channel", str(channel.id), settings.RATE_LIMIT_MESSAGES_CHANNEL),
    ]


def _plain_send_compiled(alias: str) -> bool:
    return (
        all(read.compiled() for read in (*SEND_READS, _CHANNEL_LOCK_AND_ID))
        and all(update.compiled() for update in (_CHANNEL_HEAD, _AUTHOR_READ))
        and insert_compiled(Message, alias)
    )


def _compile_plain_send(alias: str) -> None:
    """Build the SQL a plain send runs (nothing is sent to the database)."""
    for compiled in (*SEND_READS, _CHANNEL_LOCK_AND_ID, _CHANNEL_HEAD, _AUTHOR_READ):
        compiled._plan()
    sample = Message(id=1, channel_id=1, author_id=1, client_id=uuid.uuid4(), seq=1)
    sample.created_at = timezone.now()
    insert_statement(sample, alias, as_is=True)


# Every send takes this lock: its SQL is built once.
_CHANNEL_LOCK: Compiled[Channel] = Compiled(
    lambda channel_id: Channel.objects.select_for_update().filter(id=channel_id), int
)
# ... and, for a plain message on PostgreSQL, this one, which also takes the next message id.
_CHANNEL_LOCK_AND_ID: Compiled[Channel] = Compiled(
    lambda channel_id: (
        Channel.objects.select_for_update()
        .filter(id=channel_id)
        .annotate(
            next_message_id=RawSQL(
                "nextval(pg_get_serial_sequence(%s, %s))",
                (Message._meta.db_table, Message._meta.pk.column),  # type: ignore[union-attr]
            )
        )
    ),
    int,
)
# ... and these writes: the channel's head, the author's read marker, and the stored rendering
# (only of the version it was made from; a plain message on PostgreSQL is inserted with it).
_CHANNEL_HEAD = CompiledUpdate(
    lambda message_id, seq, channel_id: (
        Channel.objects.filter(id=channel_id),
        {"last_message_id": message_id, "last_seq": seq},
    ),
    int,
    int,
    int,
)
_AUTHOR_READ = CompiledUpdate(
    lambda message_id, channel_id, user_id: (
        ChannelMember.objects.filter(channel_id=channel_id, user_id=user_id),
        {"last_read_id": message_id},
    ),
    int,
    int,
    int,
)
_STORE_PAYLOAD = CompiledUpdate(
    lambda payload_json, message_id, version: (
        Message.objects.filter(id=message_id, version=version),
        {"payload_json": payload_json, "payload_version": version},
    ),
    Message._meta.get_field("payload_json"),
    int,
    int,
)


def _flow_hold(
    pending: MessagePending,
    *,
    channel: Channel,
    author: User,
    text: str,
    client_id: uuid.UUID,
    reply_to: int | None,
    attachments: list[uuid.UUID],
) -> HeldMessage:
    """Keep a message a channel flow holds (`HeldMessage`, kind `flow`). A retry of the same
    `client_id` finds it: still pending, it is pending again; decided, a denial is refused
    again. A message the word filter held and a moderator approved becomes a flow's."""
    with transaction.atomic():
        held, created = HeldMessage.objects.select_for_update().get_or_create(
            author=author,
            client_id=client_id,
            defaults={
                "kind": HeldMessage.Kind.FLOW,
                "channel": channel,
                "body": text,
                "reply_to_id": reply_to,
                "attachment_ids": [str(a) for a in attachments],
                "external_id": pending.external_id,
            },
        )
        if created:
            return held
        if held.kind == HeldMessage.Kind.REVIEW:
            held.kind, held.status = HeldMessage.Kind.FLOW, HeldMessage.Status.PENDING
            held.external_id = pending.external_id
            held.attachment_ids = [str(a) for a in attachments]
            held.save(update_fields=["kind", "status", "external_id", "attachment_ids"])
        elif held.status in (HeldMessage.Status.DENIED, HeldMessage.Status.FAILED):
            raise MessageDenied(held.detail or "The messaging service refused this message.")
    return held


FLOW_OUTCOMES = {
    "SENT": HeldMessage.Status.SENT,
    "DENIED": HeldMessage.Status.DENIED,
    "FAILED": HeldMessage.Status.FAILED,
}


def flow_reason(status: str, detail: str) -> str:
    """What the author reads about a message the channel flow denied or that failed."""
    if status == HeldMessage.Status.DENIED:
        lead = "Not sent: this channel's checks refused the message"
    else:
        lead = "Not sent: this channel's checks failed on the message"
    return f"{lead}: {detail}" if detail else f"{lead}."


def message_flow_resolve(*, held: HeldMessage, outcome: str, detail: str = "") -> HeldMessage:
    """Apply a channel flow's outcome (`SENT`, `DENIED` or `FAILED`) to a message it held.

    SENT releases it: it becomes a Message with the next position and Chime's id, fanned out as
    `message.new` like any message. DENIED and FAILED keep it out of the channel for good. The
    author is told either way on their own sockets (`message.status`); nobody else ever hears
    of it. Idempotent: an outcome for a message already decided changes nothing."""
    status = FLOW_OUTCOMES[outcome]
    with transaction.atomic():
        locked = (
            HeldMessage.objects.select_for_update()
            .select_related("channel__community", "author")
            .get(id=held.id)
        )
        if locked.kind != HeldMessage.Kind.FLOW or locked.status != HeldMessage.Status.PENDING:
            return locked
        # Registered first, so the author's page hears of the release before the `message.new`
        # that everyone gets (their pending copy is replaced, not shown twice); filled in below.
        told: dict[str, Any] = {"type": "message.status"}
        events.broadcast_on_commit(events.user_key(locked.author_id), lambda: told)
        payload: dict[str, Any] | None = None
        refused = ""
        if status == HeldMessage.Status.SENT:
            try:
                with inbound(), transaction.atomic():
                    # Posted as any send is: to a channel the author may still post in.
                    channel = channel_for_member(locked.author, locked.channel_id)
                    sent = message_send(
                        channel=channel,
                        author=locked.author,
                        body=locked.body,
                        client_id=locked.client_id,
                        reply_to=locked.reply_to_id,
                        attachments=[uuid.UUID(a) for a in locked.attachment_ids],
                        screen=False,
                        external_id=locked.external_id,
                    )
                locked.message, payload = sent.message, sent.payload
            except DomainError as exc:
                # Sent in Chime, but no longer possible here (the author left the channel, it
                # was archived): the author hears why, and the bridge takes it out of Chime.
                status, refused = HeldMessage.Status.FAILED, f"Not sent: {exc.detail}"
        locked.status, locked.decided_at = status, timezone.now()
        if status == HeldMessage.Status.SENT:
            locked.detail = ""
        else:
            locked.detail = refused or flow_reason(status, detail)
        locked.save(update_fields=["status", "decided_at", "detail", "message"])
        told.update(flow_status_payload(locked, payload))
    return locked


def _existing(author: User, client_id: uuid.UUID, channel: Channel) -> Message | None:
    found = (
        Message.objects.filter(author=author, client_id=client_id)
        .values_list("id", "channel_id")
        .first()
    )
    return None if found is None else _resent(found, channel)


def _resent(found: tuple[int, int], channel: Channel) -> Message:
    """The message a retry (same client_id) already stored, if it went to this channel."""
    message_id, channel_id = found
    if channel_id != channel.id:
        raise Conflict("This client_id was already used in another channel.")
    return _with_related(message_id)


def _with_related(message_id: int) -> Message:
    return Message.objects.with_related().get(id=message_id)


def message_changed(*, message_ids: QuerySet[Message, Any] | list[int]) -> None:
    """What these messages show changed: their stored renderings (`Message.payload_json`) are
    no longer valid, and neither are those of the replies quoting them."""
    Message.objects.filter(Q(id__in=message_ids) | Q(reply_to_id__in=message_ids)).update(
        version=F("version") + 1
    )


def _broadcast_message(
    message: Message,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    committed: bool = False,
    **extra: Any,
) -> None:
    """Broadcast the message's payload after commit: `payload` when given (built from what is
    in hand), else read back from the database then. A change to an existing message also makes
    its stored rendering stale (`message_changed`). `committed`: written outside Django's
    transactions and committed already (`locked_write_async`): sent now."""
    message_id, channel_id = message.id, message.channel_id
    if kind != "message.new":
        message_changed(message_ids=[message_id])
    community_id = message.channel.community_id if kind == "message.new" else None

    def build() -> dict[str, Any]:
        made = payload if payload is not None else message_payload(_with_related(message_id))
        if community_id is not None:  # runs once, after the commit
            metrics.message_published(community=community_id, channel=channel_id)
        return {"type": kind, "message": made, **extra}

    broadcast = events.broadcast_committed if committed else events.broadcast_on_commit
    broadcast(
        events.channel_key(channel_id),
        build,
        meta={"kind": kind, "id": message_id, "seq": message.seq, "author": message.author_id},
    )


def message_edit(*, message: Message, by: User, body: str) -> Message:
    if not policy.can_edit_message(by, message):
        raise Forbidden("You can only edit your own messages.")
    if message.is_deleted:
        raise Invalid("A deleted message cannot be edited.")
    check_writable(message.channel)
    screening.check_participation(by, message.channel.community_id)
    text = _clean_body(body)
    if text == message.body:
        return message
    channel = message.channel
    rendered = render_body(text, mentionable_members(channel, mention_candidates(text)))
    with transaction.atomic():
        MessageRevision.objects.create(message=message, body=message.body)
        message.body = text
        message.body_html = rendered.html
        message.edited_at = timezone.now()
        message.save(update_fields=["body", "body_html", "edited_at"])
        already = set(message.mentions.values_list("user_id", flat=True))
        Mention.objects.bulk_create(
            Mention(message=message, user_id=uid, channel_id=message.channel_id)
            for uid in rendered.mentioned_ids - already
            if uid != by.id
        )
        get_backend().edit_message(message)
        _broadcast_message(message, "message.updated")
        metrics.MESSAGE_EDITS.inc()
    return message


def message_delete(*, message: Message, by: User) -> Message:
    """Delete a message, leaving a tombstone. Authors and community moderators may."""
    if not policy.can_delete_message(by, message):
        raise Forbidden("You can only delete your own messages.")
    if message.is_deleted:
        return message
    with transaction.atomic():
        # The text is kept as a revision for moderators (admin); the channel shows a tombstone.
        MessageRevision.objects.create(message=message, body=message.body)
        message.deleted_at = timezone.now()
        message.deleted_by = by
        message.body = ""
        message.body_html = ""
        message.save(update_fields=["deleted_at", "deleted_by", "body", "body_html"])
        message.reactions.all().delete()
        get_backend().delete_message(message)
        _broadcast_message(message, "message.deleted")
        metrics.MESSAGE_REMOVALS.inc()
        if by.pk != message.author_id:
            audit_record(
                community=message.channel.community_id,
                by=by,
                action=AuditEntry.Action.MESSAGE_DELETE,
                target=message.author,
                message_id=message.id,
                detail={"channel": message.channel_id},
            )
    return message


# --- Reactions ------------------------------------------------------------------------------


def _clean_emoji(emoji: str) -> str:
    """Exactly one emoji of the Unicode set (one grapheme: skin tones, ZWJ sequences, flags and
    keycaps included), nothing around it but trimmed spaces."""
    emoji = unicodedata.normalize("NFC", emoji.strip())
    if (
        len(emoji) > MAX_EMOJI_LENGTH
        or not emoji_data.is_emoji(emoji)
        # A skin tone or hair component alone is not an emoji.
        or emoji_data.EMOJI_DATA[emoji]["status"] == emoji_data.STATUS["component"]
    ):
        raise Invalid("Pick one emoji.")
    return emoji


def reaction_add(*, message: Message, user: User, emoji: str) -> Message:
    emoji = _clean_emoji(emoji)
    if message.is_deleted:
        raise Invalid("You cannot react to a deleted message.")
    check_writable(message.channel)
    screening.check_participation(user, message.channel.community_id)
    ratelimit.hit("reaction-user", str(user.id), settings.RATE_LIMIT_REACTIONS_USER)
    with transaction.atomic():
        _, created = Reaction.objects.get_or_create(message=message, user=user, emoji=emoji)
        if created:
            _broadcast_message(message, "reaction", emoji=emoji, user=user.id, added=True)
    return message


def reaction_remove(*, message: Message, user: User, emoji: str) -> Message:
    emoji = _clean_emoji(emoji)
    check_writable(message.channel)
    screening.check_participation(user, message.channel.community_id)
    with transaction.atomic():
        removed, _ = Reaction.objects.filter(message=message, user=user, emoji=emoji).delete()
        if removed:
            _broadcast_message(message, "reaction", emoji=emoji, user=user.id, added=False)
    return message


# --- Read markers ---------------------------------------------------------------------------


def read_mark(*, channel: Channel, user: User, message_id: int) -> int:
    """Move the user's read marker forward to `message_id`; returns the marker."""
    with transaction.atomic():
        member = (
            ChannelMember.objects.select_for_update().filter(channel=channel, user=user).first()
        )
        if member is None:
            raise NotFound("No such channel.")
        target = min(message_id, Channel.objects.get(id=channel.id).last_message_id)
        if target > member.last_read_id:
            member.last_read_id = target
            member.save(update_fields=["last_read_id"])
            get_backend().mark_read(channel, user, target)
            events.broadcast_on_commit(
                events.user_key(user.id),
                lambda: {"type": "read", "channel": channel.id, "message": target},
            )
        return member.last_read_id
