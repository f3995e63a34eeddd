"""Who may do what in a channel, built on the community role policy (`communities.policy`).

Being able to see a channel at all is checked by the permission-checked fetches in
`chat.selectors` (`channel_for_member`, `message_for_member`); these answer what a member may do
there.
"""

from __future__ import annotations

from accounts.models import User
from chat.models import Channel, ChannelMember, Message
from communities.policy import (
    Actor,
    can_act_on_message_of,
    can_moderate,
    can_own,
    is_moderator_role,
)

_UNKNOWN = "?"


def can_post(user: Actor, channel: Channel, *, role: str | None = _UNKNOWN) -> bool:
    """Members post in open and private channels; announcements are for moderators.

    `role`: the user's role in the community, when the caller has it (`policy.role_with`).
    """
    if channel.kind == Channel.Kind.ANNOUNCEMENT:
        if role == _UNKNOWN:
            return can_moderate(user, channel.community_id)
        return is_moderator_role(role)
    return user.is_authenticated


def can_manage_channel(user: Actor, channel: Channel) -> bool:
    """Create channels, set topics, rename, archive and unarchive: the community's moderators."""
    return can_moderate(user, channel.community_id)


def can_delete_channel(user: Actor, channel: Channel) -> bool:
    """Delete a channel with its messages: owners (and site moderators) only."""
    return can_own(user, channel.community_id)


def is_writable(channel: Channel) -> bool:
    """An archived channel is read-only: no posts, reactions or edits."""
    return channel.archived_at is None


def can_add_member(user: Actor, channel: Channel) -> bool:
    """Moderators add anyone; members of a private channel invite others into it."""
    if can_moderate(user, channel.community_id):
        return True
    return (
        user.pk is not None
        and channel.kind == Channel.Kind.PRIVATE
        and ChannelMember.objects.filter(channel=channel, user_id=user.pk).exists()
    )


def can_remove_member(user: Actor, channel: Channel, target: User) -> bool:
    """Anyone leaves a private channel; moderators remove others."""
    return user.pk == target.pk or can_moderate(user, channel.community_id)


def can_edit_message(user: Actor, message: Message) -> bool:
    return message.author_id == user.pk


def can_delete_message(user: Actor, message: Message) -> bool:
    """Authors delete their own messages; moderators any message of their community."""
    return message.author_id == user.pk or can_moderate(user, message.channel.community_id)


# --- Moderation -----------------------------------------------------------------------------


def can_remove_message(user: Actor, message: Message) -> bool:
    """Moderators remove (and restore) messages of their community: their own, and those of
    people they act on (`communities.policy.can_act_on`)."""
    return can_act_on_message_of(user, message.channel.community_id, message.author)


def can_report_message(user: Actor, message: Message) -> bool:
    """Members report others' messages (seeing it at all is the fetch's check)."""
    return user.is_authenticated and message.author_id != user.pk


def can_review(user: Actor, community_id: int) -> bool:
    """Read the queue and the audit log, resolve reports, approve held messages."""
    return can_moderate(user, community_id)
