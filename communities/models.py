"""Hobby communities: the communities themselves, their tags, memberships and join requests."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse


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
    tags = models.ManyToManyField(Tag, blank=True, related_name="communities")
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.PUBLIC
    )
    invite_code = models.CharField(max_length=40, unique=True, default=new_invite_code)
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
