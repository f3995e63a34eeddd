"""Who may do what in a community: the one place where roles are read.

Views, the socket, the API, templates and admin ask these functions; services call them before
every change. Site moderators (staff given `communities.moderate`, and superusers) moderate every
community and act there as its owners do.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from communities.models import Ban, Community, Membership
from hobbies.errors import Banned, TimedOut

Role = Membership.Role
# How far each role reaches: a role acts on members with a lower rank only (owners on everyone).
_RANK: dict[str | None, int] = {None: 0, Role.MEMBER: 1, Role.MODERATOR: 2, Role.OWNER: 3}
SITE_MODERATE_PERMISSION = "communities.moderate"

Actor = User | AnonymousUser


def _community_id(community: Community | int) -> int:
    return community if isinstance(community, int) else community.id


def is_site_moderator(user: Actor) -> bool:
    """Staff with the moderation permission (or superusers) moderate every community."""
    if not user.is_authenticated or not user.is_active:
        return False
    # Site moderators are staff; asking only staff keeps members' pages free of the queries.
    return user.is_superuser or (user.is_staff and user.has_perm(SITE_MODERATE_PERMISSION))


def role_of(user: Actor, community: Community | int) -> str | None:
    """The role the user acts with in the community: site moderators act as owners; None for
    people who are not members (and anonymous visitors)."""
    if not user.is_authenticated or not user.is_active:
        return None
    if is_site_moderator(user):
        return Role.OWNER
    role: str | None = (
        Membership.objects.filter(community_id=_community_id(community), user_id=user.pk)
        .values_list("role", flat=True)
        .first()
    )
    return role


def role_with(user: Actor, membership: Membership | None) -> str | None:
    """`role_of`, for a page that has already read the user's membership."""
    if not user.is_authenticated or not user.is_active:
        return None
    if is_site_moderator(user):
        return Role.OWNER
    return membership.role if membership is not None else None


def is_moderator_role(role: str | None) -> bool:
    return role in (Role.OWNER, Role.MODERATOR)


def can_moderate(user: Actor, community: Community | int) -> bool:
    """Moderators and owners of the community, and site moderators: manage channels and
    members, answer join requests, remove messages, post in announcement channels."""
    return is_moderator_role(role_of(user, community))


def moderated_community_ids(user: Actor) -> QuerySet[Membership, int] | None:
    """The ids of the communities the user moderates or owns, as a subquery (no query of its
    own), or None for every community (site moderators). The admin scopes its lists, choices,
    filters and actions with it."""
    if is_site_moderator(user):
        return None
    if not user.is_authenticated or not user.is_active:
        return Membership.objects.none().values_list("community_id", flat=True)
    return Membership.objects.filter(
        user_id=user.pk, role__in=(Role.OWNER, Role.MODERATOR)
    ).values_list("community_id", flat=True)


def can_own(user: Actor, community: Community | int) -> bool:
    """Owners (and site moderators): change roles and what only owners change."""
    return role_of(user, community) == Role.OWNER


def outranks(actor_role: str | None, target_role: str | None) -> bool:
    """Whether a member with `actor_role` may act on one with `target_role` (remove them):
    moderators act on members, owners on members and moderators, nobody on owners."""
    if not is_moderator_role(actor_role) or target_role == Role.OWNER:
        return False
    return _RANK[actor_role] > _RANK[target_role]


# --- Moderation: timeouts, bans, and who may act on whom ------------------------------------


def can_act_on(actor: Actor, community: Community | int, target: User) -> bool:
    """Whether `actor` may use a moderator's power on `target` here (remove their messages,
    warn, time out, ban): moderators on members and non-members, owners on moderators too, site
    moderators on everyone but other site staff (superusers on them too); nobody on themselves
    or on an owner (a site moderator aside)."""
    if actor.pk is None or actor.pk == target.pk or not actor.is_authenticated:
        return False
    if is_site_moderator(target):
        return bool(getattr(actor, "is_superuser", False)) and actor.is_active
    if is_site_moderator(actor):
        return True
    target_role = role_of(target, community)
    return outranks(role_of(actor, community), target_role)


def can_act_on_message_of(actor: Actor, community: Community | int, author: User) -> bool:
    """Remove or restore a message: a moderator's own, or one by someone they act on."""
    if actor.pk is not None and actor.pk == author.pk:
        return can_moderate(actor, community)
    return can_act_on(actor, community, author)


def active_ban(user: Actor, community: Community | int) -> Ban | None:
    """The ban keeping the user out of the community now, if any."""
    if user.pk is None:
        return None
    return (
        Ban.objects.active().filter(community_id=_community_id(community), user_id=user.pk).first()
    )


def banned_by_channel(user: Actor, channel_id: int) -> Ban | None:
    """The ban keeping the user out of the community of this channel (a fetch that found
    nothing asks, to say "banned" instead of "not found")."""
    if user.pk is None:
        return None
    return Ban.objects.active().filter(community__channels__id=channel_id, user_id=user.pk).first()


def check_not_banned(user: Actor, community: Community | int) -> None:
    ban = active_ban(user, community)
    if ban is not None:
        raise Banned(_ban_detail(ban), until=ban.until)


def _ban_detail(ban: Ban) -> str:
    end = f" until {ban.until:%Y-%m-%d %H:%M} UTC" if ban.until else ""
    return f"You are banned from this community{end}."


def raise_banned(ban: Ban) -> None:
    raise Banned(_ban_detail(ban), until=ban.until)


def standing(
    user: Actor,
    community: Community | int,
    known: tuple[str | None, datetime | None] | None = None,
) -> tuple[str | None, datetime | None]:
    """The user's role here and the end of their timeout, if one runs now: one query, for the
    send path (which needs both: the timeout stops it, the role exempts from slow mode), or
    none when the caller `known` their membership's role and timeout from a fetch it made."""
    if not user.is_authenticated or not user.is_active:
        return None, None
    row = known
    if row is None:
        row = (
            Membership.objects.filter(community_id=_community_id(community), user_id=user.pk)
            .values_list("role", "timeout_until")
            .first()
        )
    role, until = row if row is not None else (None, None)
    if is_site_moderator(user):
        role = Role.OWNER
    if until is not None and until <= timezone.now():
        until = None
    return role, until


def check_not_timed_out(
    user: Actor,
    community: Community | int,
    known: tuple[str | None, datetime | None] | None = None,
) -> str | None:
    """Raise `TimedOut` while the user's timeout runs; else return their role here."""
    role, until = standing(user, community, known)
    if until is not None:
        raise TimedOut(f"You are timed out until {until:%Y-%m-%d %H:%M} UTC.", until=until)
    return role


# --- Owners' tools: who changes the community itself -----------------------------------------


def can_edit_community(user: Actor, community: Community | int) -> bool:
    """Owners (and site moderators) change the community's name, description, rules, tags,
    visibility and avatar."""
    return can_own(user, community)


def can_transfer_ownership(user: Actor, community: Community | int) -> bool:
    """Owners (and site moderators) hand the community to another member."""
    return can_own(user, community)


def can_set_roles(user: Actor, community: Community | int) -> bool:
    """Owners (and site moderators) appoint and demote moderators."""
    return can_own(user, community)


def can_manage_invites(user: Actor, community: Community | int) -> bool:
    """Moderators make, revoke and replace invite links."""
    return can_moderate(user, community)


def can_decide_join_requests(user: Actor, community: Community | int) -> bool:
    """Moderators see and answer join requests (and see how many wait)."""
    return can_moderate(user, community)
