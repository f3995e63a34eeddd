"""Hobby communities: the communities themselves, their tags, memberships and join requests."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone


def new_invite_code() -> str:
    return secrets.token_urlsafe(16)


class Tag(models.Model):
    """A hobby tag (`photography`, `film`, `bouldering`): lowercase, unique."""

    name = models.SlugField(max_length=40, unique=True)

    class Meta:
        db_table = "hobbies_tag"  # moved from the `hobbies` app with its data
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CommunityQuerySet(models.QuerySet["Community"]):
    def search(self, query: str = "", tag: str = "") -> CommunityQuerySet:
        qs = self
        if query:
            qs = qs.filter(Q(name__icontains=query) | Q(description__icontains=query))
        if tag:
            qs = qs.filter(tags__name=tag.strip().lower())
        return qs


class Community(models.Model):
    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public: anyone can join"
        PRIVATE = "private", "Private: by request or invite"

    name = models.CharField(max_length=80)
    slug = models.SlugField(max_length=50, unique=True)
    description = models.TextField(blank=True, max_length=2000)
    # Shown to people before they join: on the about page and the join and invite pages.
    rules = models.TextField(blank=True, max_length=4000)
    avatar = models.ImageField(upload_to="avatars/communities/%Y/%m/", blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="communities")
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.PUBLIC
    )
    # The permanent invite link (`/invite/<code>/`), kept beside the expiring ones (`Invite`).
    invite_code = models.CharField(max_length=40, unique=True, default=new_invite_code)
    # The word filter, one word or phrase per line (matched as whole words, without case):
    # messages with a blocked one are refused; with a held one they wait for a moderator.
    blocked_words = models.TextField(blank=True, max_length=4000)
    held_words = models.TextField(blank=True, max_length=4000)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects: CommunityQuerySet = CommunityQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        db_table = "hobbies_community"  # moved from the `hobbies` app with its data
        ordering = ["name"]
        verbose_name_plural = "communities"
        # Site moderators hold it (the "Site moderators" group): they moderate every community.
        permissions = [("moderate", "Can moderate every community (site moderator)")]
        constraints = [
            models.CheckConstraint(
                condition=Q(visibility__in=["public", "private"]), name="community_visibility_valid"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("community", kwargs={"slug": self.slug})

    @property
    def is_public(self) -> bool:
        return self.visibility == self.Visibility.PUBLIC


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        MODERATOR = "moderator", "Moderator"
        MEMBER = "member", "Member"

    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)
    # A moderator's timeout: until then the member reads but cannot post, react or edit.
    timeout_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "hobbies_membership"  # moved from the `hobbies` app with its data
        ordering = ["joined_at"]
        constraints = [
            models.UniqueConstraint(fields=["community", "user"], name="membership_unique"),
            models.CheckConstraint(
                condition=Q(role__in=["owner", "moderator", "member"]), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.community} ({self.role})"


class JoinRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="join_requests")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="join_requests"
    )
    message = models.CharField(max_length=280, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "hobbies_joinrequest"  # moved from the `hobbies` app with its data
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["community", "user"],
                condition=Q(status="pending"),
                name="join_request_one_pending",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.community} ({self.status})"


class InviteQuerySet(models.QuerySet["Invite"]):
    def usable(self) -> InviteQuerySet:
        """Not revoked, not expired, not used up."""
        return (
            self.filter(revoked_at__isnull=True)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
            .filter(Q(max_uses__isnull=True) | Q(uses__lt=models.F("max_uses")))
        )


class Invite(models.Model):
    """An invite link (`/invite/<code>/`) that may expire, run out of uses, or be revoked.

    The community's own `invite_code` stays a permanent link beside these.
    """

    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="invites")
    code = models.CharField(max_length=40, unique=True, default=new_invite_code)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    max_uses = models.PositiveIntegerField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects: InviteQuerySet = InviteQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(max_uses__isnull=True) | Q(uses__lte=models.F("max_uses")),
                name="invite_uses_within_max",
            ),
            models.CheckConstraint(
                condition=Q(max_uses__isnull=True) | Q(max_uses__gt=0),
                name="invite_max_uses_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"Invite to {self.community} ({self.code})"

    def get_absolute_url(self) -> str:
        return reverse("invite", kwargs={"code": self.code})

    def state(self) -> str:
        """`revoked`, `expired`, `used_up` or `usable`."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "used_up"
        return "usable"


class BanQuerySet(models.QuerySet["Ban"]):
    def active(self) -> BanQuerySet:
        """Bans in force now: not lifted, and without an end or ending later."""
        return self.filter(lifted_at__isnull=True).filter(
            Q(until__isnull=True) | Q(until__gt=timezone.now())
        )


class Ban(models.Model):
    """A user banned from a community: not a member, and cannot join, ask or use an invite.

    A ban ends at `until` (None: until lifted) or when a moderator lifts it (`lifted_at`).
    """

    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="bans")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=500, blank=True)
    until = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects: BanQuerySet = BanQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["community", "user"],
                condition=Q(lifted_at__isnull=True),
                name="ban_one_open",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} banned from {self.community}"


class AuditEntry(models.Model):
    """One moderation action in a community's audit log: who did what to whom, when and why.

    Written by the service that made the change, inside its transaction, whichever page, API,
    socket frame, admin action or command called it. Messages are named by id (chat is a layer
    above): `message_id`.
    """

    class Action(models.TextChoices):
        MESSAGE_REMOVE = "message.remove", "Removed a message"
        MESSAGE_RESTORE = "message.restore", "Restored a message"
        MESSAGE_DELETE = "message.delete", "Deleted a message"
        REPORT_RESOLVE = "report.resolve", "Resolved reports"
        WARN = "member.warn", "Warned a member"
        TIMEOUT = "member.timeout", "Timed out a member"
        TIMEOUT_END = "member.timeout_end", "Ended a timeout"
        BAN = "member.ban", "Banned a user"
        UNBAN = "member.unban", "Lifted a ban"
        CLEANUP = "member.cleanup", "Removed a user's messages"
        SLOW_MODE = "channel.slow_mode", "Set slow mode"
        FILTER = "community.filter", "Changed the word filter"
        HELD_APPROVE = "held.approve", "Approved a held message"
        HELD_REJECT = "held.reject", "Rejected a held message"
        COMMUNITY_UPDATE = "community.update", "Changed the community"
        TRANSFER = "community.transfer", "Transferred ownership"
        ROLE = "member.role", "Changed a member's role"
        REMOVE = "member.remove", "Removed a member"
        JOIN_APPROVE = "join.approve", "Approved a join request"
        JOIN_REJECT = "join.reject", "Rejected a join request"
        INVITE_CREATE = "invite.create", "Made an invite link"
        INVITE_REVOKE = "invite.revoke", "Revoked an invite link"
        INVITE_RESET = "invite.reset", "Replaced the permanent invite link"
        CHANNEL_CREATE = "channel.create", "Created a channel"
        CHANNEL_RENAME = "channel.rename", "Renamed a channel"
        CHANNEL_TOPIC = "channel.topic", "Set a channel's topic"
        CHANNEL_ARCHIVE = "channel.archive", "Archived a channel"
        CHANNEL_UNARCHIVE = "channel.unarchive", "Unarchived a channel"
        CHANNEL_DELETE = "channel.delete", "Deleted a channel"

    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="audit")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=24, choices=Action.choices)
    target = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message_id = models.BigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    # What else the action needs to be read (a channel, a count, an end time).
    detail = models.JSONField(default=dict, blank=True)
    # The action that undoes this one, if any (`message.restore`, `member.unban`, …).
    undo = models.CharField(max_length=24, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["community", "-id"], name="audit_community")]

    def __str__(self) -> str:
        return f"{self.actor} {self.action} in {self.community_id}"
