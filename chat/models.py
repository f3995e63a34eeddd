"""Channels, their members, messages, revisions, reactions and mentions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from communities.models import Community

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from accounts.models import User


class ChannelQuerySet(models.QuerySet["Channel"]):
    def visible_to(self, user: User | int) -> QuerySet[Channel]:
        """Channels the user (or the user with this id) is a member of, in communities the
        user belongs to."""
        return self.filter(members__user=user, community__memberships__user=user)


class Channel(models.Model):
    class Kind(models.TextChoices):
        OPEN = "open", "Open to every member"
        PRIVATE = "private", "Private: invited members only"
        ANNOUNCEMENT = "announcement", "Announcements: only moderators post"

    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="channels")
    name = models.SlugField(max_length=50)
    topic = models.CharField(max_length=250, blank=True)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.OPEN)
    # Id and position of the newest message; written under the channel's row lock with each
    # send, so ids of one channel commit in increasing order and positions have no gaps.
    last_message_id = models.BigIntegerField(default=0)
    last_seq = models.BigIntegerField(default=0)
    # How many times a member was taken out (moves with each removal, in its transaction): a
    # hub that sees it move checks its sockets' memberships in the database, so a removal
    # whose broadcast was lost still ends their subscriptions.
    removals = models.PositiveBigIntegerField(default=0)
    # Slow mode: a member posts at most one message per this many seconds (0: off).
    slow_mode_seconds = models.PositiveIntegerField(default=0)
    # Archived: read-only (no posts, reactions or edits), left out of the channel list.
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ChannelQuerySet.as_manager()

    # The fetching user's role and timeout in the community, when the fetch read them with the
    # channel (`chat.selectors.channel_for_member`); None: not read.
    viewer_standing: tuple[str | None, datetime | None] | None = None

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["community", "name"], name="channel_name_unique"),
            models.CheckConstraint(
                condition=Q(kind__in=["open", "private", "announcement"]), name="channel_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.name}"

    def get_absolute_url(self) -> str:
        return reverse("channel", kwargs={"slug": self.community.slug, "name": self.name})

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class ChannelMember(models.Model):
    """A user's subscription to a channel, with the read marker.

    Every community member has one for each open and announcement channel; private channels
    have one only for invited members.
    """

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="channel_memberships"
    )
    last_read_id = models.BigIntegerField(default=0)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "user"], name="channel_member_unique")
        ]
        indexes = [models.Index(fields=["user", "channel"], name="channel_member_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.channel}"


class MessageQuerySet(models.QuerySet["Message"]):
    def with_related(self) -> QuerySet[Message]:
        """Everything the message partial needs, in a fixed number of queries."""
        return self.select_related(
            "author__profile", "reply_to__author__profile", "channel"
        ).prefetch_related("reactions", "attachments")

    def live(self) -> QuerySet[Message]:
        """Neither deleted nor removed (a removal sets `deleted_at` too)."""
        return self.filter(deleted_at__isnull=True)


class Message(models.Model):
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="messages"
    )
    client_id = models.UUIDField()
    # The message's position in its channel: 1, 2, 3… with no gaps, so a client that has every
    # position up to N knows it missed nothing (docs/protocol.md).
    seq = models.BigIntegerField()
    body = models.TextField()
    # Sanitized HTML of `body`, rendered once when the body is written.
    body_html = models.TextField()
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    external_id = models.CharField(max_length=128, blank=True)
    # The MESSAGE object as JSON, stored the first time a replay needs it, so later replays
    # read instead of rendering. Valid while `payload_version` equals `version`, which every
    # change to what the object shows moves on (chat.services.message_changed).
    version = models.PositiveIntegerField(default=0)
    payload_version = models.IntegerField(default=-1)
    payload_json = models.TextField(blank=True)
    # Removed by a moderator: `deleted_at`/`deleted_by` say when and by whom, as for a deletion,
    # but the text stays for moderators (and for a restore) until the message is purged.
    removed = models.BooleanField(default=False)
    removal_reason = models.CharField(max_length=500, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["author", "client_id"], name="message_client_id_unique"
            ),
            models.UniqueConstraint(fields=["channel", "seq"], name="message_channel_seq_unique"),
            models.CheckConstraint(condition=Q(seq__gt=0), name="message_seq_positive"),
            models.CheckConstraint(
                condition=Q(removed=False) | Q(deleted_at__isnull=False),
                name="message_removed_is_deleted",
            ),
        ]
        indexes = [
            models.Index(fields=["channel", "id"], name="message_channel_id"),
            # A user's messages, newest first: slow mode and the clean-up after a spammer.
            models.Index(fields=["author", "-id"], name="message_author_id"),
        ]

    def __str__(self) -> str:
        return f"{self.author} in {self.channel_id}: {self.body[:40]}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class MessageRevision(models.Model):
    """A previous version of an edited message's body."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="revisions")
    body = models.TextField()
    replaced_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"revision of {self.message_id} at {self.replaced_at:%Y-%m-%d %H:%M}"


class Reaction(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    emoji = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["message", "user", "emoji"], name="reaction_unique")
        ]

    def __str__(self) -> str:
        return f"{self.emoji} by {self.user_id} on {self.message_id}"


class Mention(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="mentions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mentions"
    )
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "user"], name="mention_unique")]
        indexes = [models.Index(fields=["user", "channel", "message"], name="mention_user_channel")]

    def __str__(self) -> str:
        return f"@{self.user_id} in {self.message_id}"


class AttachmentQuerySet(models.QuerySet["Attachment"]):
    def servable(self) -> QuerySet[Attachment]:
        """Attachments of live messages: the only ones anyone may download."""
        return self.filter(
            status=Attachment.Status.READY,
            message__isnull=False,
            message__deleted_at__isnull=True,
        )


class Attachment(models.Model):
    """A file uploaded by a member, then attached to one message.

    The storage key is random and never derived from the filename; `name` is the sanitized name
    shown to people and sent in `Content-Disposition`.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for the upload"
        READY = "ready", "Uploaded and checked"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    uploader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments"
    )
    # Set once, when the message that carries it is sent. A message removed from the database
    # leaves its attachments unattached, and the purge removes them.
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="attachments"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.BigIntegerField()
    key = models.CharField(max_length=200, unique=True)
    thumbnail_key = models.CharField(max_length=200, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    thumbnail_width = models.PositiveIntegerField(null=True, blank=True)
    thumbnail_height = models.PositiveIntegerField(null=True, blank=True)
    # Place in the message, in the order the sender listed the ids.
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    objects = AttachmentQuerySet.as_manager()

    class Meta:
        ordering = ["position", "created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "ready"]), name="attachment_status_valid"
            ),
            models.CheckConstraint(condition=Q(size__gt=0), name="attachment_size_positive"),
            models.CheckConstraint(
                condition=Q(message__isnull=True) | Q(status="ready"),
                name="attachment_attached_is_ready",
            ),
        ]
        indexes = [
            models.Index(fields=["uploader", "status"], name="attachment_uploader"),
            models.Index(fields=["message", "created_at"], name="attachment_stale"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.content_type}, {self.size} bytes)"

    @property
    def is_image(self) -> bool:
        return bool(self.thumbnail_key)


class HeldMessage(models.Model):
    """A message held back from its channel. It becomes a Message (and takes the next position
    in its channel) only when released; until then only its author knows of it.

    Two reasons hold one (`kind`): the word filter (`review`: a moderator approves or rejects
    it), or the messaging service's channel flow (`flow`: Chime answered the send PENDING; its
    outcome, SENT, DENIED or FAILED, decides it, docs/chime.md)."""

    class Kind(models.TextChoices):
        REVIEW = "review", "Held for a moderator's review"
        FLOW = "flow", "Held by the messaging service's channel flow"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        SENT = "sent", "Sent by the channel flow"
        DENIED = "denied", "Denied by the channel flow"
        FAILED = "failed", "Failed in the channel flow"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="held")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    client_id = models.UUIDField()
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.REVIEW)
    body = models.TextField()
    reply_to_id = models.BigIntegerField(null=True, blank=True)
    # The author's confirmed uploads to attach when it is released (flow; ids as strings).
    attachment_ids = models.JSONField(default=list, blank=True)
    matched = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    # The messaging service's message id (flow), and why it was denied or failed.
    external_id = models.CharField(max_length=128, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    message = models.OneToOneField(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["author", "client_id"], name="held_client_id_unique"),
            models.CheckConstraint(
                condition=Q(kind="review", status__in=["pending", "approved", "rejected"])
                | Q(kind="flow", status__in=["pending", "sent", "denied", "failed"]),
                name="held_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["channel", "status"], name="held_channel_status"),
            # The bridge's poll of the messages a channel flow still holds.
            models.Index(fields=["kind", "status"], name="held_kind_status"),
        ]

    def __str__(self) -> str:
        return f"held from {self.author_id} in {self.channel_id}: {self.body[:40]}"


class Report(models.Model):
    """A member's report of a message, once per member and message. A moderator resolves every
    open report of a message at once; the reporters are told."""

    class Reason(models.TextChoices):
        SPAM = "spam", "Spam or advertising"
        HARASSMENT = "harassment", "Harassment or bullying"
        HATE = "hate", "Hate speech"
        EXPLICIT = "explicit", "Sexual or violent content"
        OTHER = "other", "Something else"

    class Outcome(models.TextChoices):
        REMOVE = "remove", "Message removed"
        WARN = "warn", "Author warned"
        TIMEOUT = "timeout", "Author timed out"
        BAN = "ban", "Author banned"
        DISMISS = "dismiss", "Dismissed"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=12, choices=Reason.choices)
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    # When the reporter was shown the outcome on a page (the live frame may have missed them).
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["message", "reporter"], name="report_once"),
            models.CheckConstraint(
                condition=Q(outcome="") | Q(resolved_at__isnull=False), name="report_resolved"
            ),
        ]
        indexes = [
            models.Index(fields=["community", "resolved_at"], name="report_queue"),
            models.Index(fields=["reporter", "notified_at"], name="report_notice"),
        ]

    def __str__(self) -> str:
        return f"report of {self.message_id} by {self.reporter_id}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
