"""The rollup's tables: figures per channel and hour, per member and day, per community and day,
and for the whole site per day, kept by `analytics.rollup.stats_rollup` (docs/analytics.md).

Days and hours are UTC. Pages read these tables only, never the messages.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from chat.models import Channel
from communities.models import Community


class ChannelHour(models.Model):
    """Messages sent in a channel in one hour of one day (rows only for hours with messages)."""

    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="+")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    hour = models.PositiveSmallIntegerField()
    messages = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "day", "hour"], name="channel_hour_unique"),
            models.CheckConstraint(condition=Q(hour__lte=23), name="channel_hour_valid"),
        ]
        indexes = [models.Index(fields=["community", "day"], name="channel_hour_community")]

    def __str__(self) -> str:
        return f"{self.channel_id} {self.day} {self.hour}h: {self.messages}"


class MemberDay(models.Model):
    """A member who sent at least one message in a community that day, and how many. Distinct
    members over any span (monthly active members) are counted from these rows."""

    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    messages = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["community", "user", "day"], name="member_day_unique")
        ]
        indexes = [models.Index(fields=["community", "day"], name="member_day_community")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.community_id} on {self.day}: {self.messages}"


class CommunityDay(models.Model):
    """A community's day: active members that day and over the 30 days ending that day, reports
    made and moderation actions taken. Rows only for days with something to say."""

    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    active_members = models.PositiveIntegerField(default=0)
    monthly_active_members = models.PositiveIntegerField(default=0)
    reports = models.PositiveIntegerField(default=0)
    moderation_actions = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["community", "day"], name="community_day_unique")
        ]

    def __str__(self) -> str:
        return f"{self.community_id} on {self.day}"


class SiteDay(models.Model):
    """Active people across every community: that day, and over the 30 days ending that day."""

    day = models.DateField(unique=True)
    active_members = models.PositiveIntegerField(default=0)
    monthly_active_members = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"site on {self.day}"


class RollupState(models.Model):
    """The one row saying how far the rollup has counted: the highest message, report and audit
    entry id counted, and the last day whose active members are computed."""

    message_id = models.BigIntegerField(default=0)
    report_id = models.BigIntegerField(default=0)
    audit_id = models.BigIntegerField(default=0)
    computed_through = models.DateField(null=True, blank=True)
    ran_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="rollup_state_single")]

    def __str__(self) -> str:
        return f"rollup through message {self.message_id}"
