"""What chat does when something happens below it. Connected in `ChatConfig.ready()`.

Each receiver runs inside the transaction of the change it follows, so both commit or neither.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.models import User
from accounts.signals import profile_changed, user_provisioned
from chat import events
from chat.backends import get_backend
from chat.models import Channel, Message
from chat.services import (
    channel_create,
    community_channels_join,
    community_channels_leave,
    message_changed,
)
from chat.session import session_hash
from communities.models import Community, Membership
from communities.signals import (
    community_created,
    member_joined,
    member_left,
    member_restricted,
    member_role_changed,
    member_unbanned,
)


@receiver(community_created, dispatch_uid="chat.community_created")
def first_channel(sender: Any, community: Community, by: User, **kwargs: Any) -> None:
    channel_create(community=community, name="general", by=None, topic="Say hello!")


@receiver(member_joined, dispatch_uid="chat.member_joined")
def join_channels(sender: Any, community: Community, user: User, **kwargs: Any) -> None:
    community_channels_join(community=community, user=user)


@receiver(member_left, dispatch_uid="chat.member_left")
def leave_channels(sender: Any, community: Community, user: User, **kwargs: Any) -> None:
    community_channels_leave(community=community, user=user)


@receiver(member_restricted, dispatch_uid="chat.member_restricted")
def tell_restricted(
    sender: Any, community: Community, user: User, kind: str, until: datetime | None, **kwargs: Any
) -> None:
    """A timeout, its end, or a ban: the user's sockets hear it (the page shows until when)."""
    payload = {
        "type": "restriction",
        "community": community.id,
        "kind": kind,
        "until": until.isoformat() if until is not None else None,
    }
    events.broadcast_on_commit(events.user_key(user.pk), lambda: payload)
    if kind == "ban":
        backend = get_backend()
        for channel in community.channels.all():
            backend.ban(channel, user)


@receiver(member_unbanned, dispatch_uid="chat.member_unbanned")
def lift_channel_bans(sender: Any, community: Community, user: User, **kwargs: Any) -> None:
    backend = get_backend()
    for channel in community.channels.all():
        backend.unban(channel, user)


@receiver(member_role_changed, dispatch_uid="chat.member_role_changed")
def mirror_moderators(
    sender: Any, community: Community, user: User, before: str, role: str, **kwargs: Any
) -> None:
    """Community moderators and owners moderate each of its channels they are in."""
    was = before in (Membership.Role.MODERATOR, Membership.Role.OWNER)
    now = role in (Membership.Role.MODERATOR, Membership.Role.OWNER)
    if was == now:
        return
    backend = get_backend()
    for channel in Channel.objects.filter(community=community, members__user=user):
        if now:
            backend.add_moderator(channel, user)
        else:
            backend.remove_moderator(channel, user)


@receiver(user_provisioned, dispatch_uid="chat.user_provisioned")
def messaging_user(sender: Any, user: User, **kwargs: Any) -> None:
    get_backend().ensure_user(user)


@receiver(user_logged_out, dispatch_uid="chat.user_logged_out")
def close_sockets_on_logout(
    sender: Any, request: HttpRequest | None, user: User | None, **kwargs: Any
) -> None:
    """Log-out closes the live sockets opened with that session."""
    if user is None or request is None or not request.session.session_key:
        return
    events.control_on_commit(
        events.user_key(user.pk), "close", session=session_hash(request.session.session_key)
    )


@receiver(pre_save, sender=User, dispatch_uid="chat.user_pre_save")
def note_access(sender: Any, instance: User, update_fields: Any = None, **kwargs: Any) -> None:
    """Remember whether the account was active, and its password hash, before the save."""
    instance._access_before = None  # type: ignore[attr-defined]
    if instance.pk is None or (
        update_fields is not None and not {"is_active", "password"} & set(update_fields)
    ):
        return
    instance._access_before = (  # type: ignore[attr-defined]
        User.objects.filter(pk=instance.pk).values_list("is_active", "password").first()
    )


@receiver(post_save, sender=User, dispatch_uid="chat.user_post_save")
def close_sockets_on_revoke(sender: Any, instance: User, created: bool, **kwargs: Any) -> None:
    """Deactivating an account or changing its password closes all of the user's sockets."""
    before = getattr(instance, "_access_before", None)
    if created or before is None:
        return
    was_active, password = before
    if (was_active and not instance.is_active) or password != instance.password:
        events.sockets_close_on_commit(instance.pk)


@receiver(profile_changed, dispatch_uid="chat.profile_changed")
def renderings_show_the_new_name(sender: Any, user: User, **kwargs: Any) -> None:
    """Stored renderings show the author's name (and replies quote it): they are stale now."""
    message_changed(message_ids=Message.objects.filter(author=user).values("id"))
