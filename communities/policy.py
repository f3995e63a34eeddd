"""Who may do what in a community: the one place where roles are read.

Views, the socket, the API, templates and admin ask these functions; services call them before
every change. Site moderators (staff given `communities.moderate`, and superusers) moderate every
community and act there as its owners do.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser

from accounts.models import User
from communities.models import Community, Membership

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


def can_own(user: Actor, community: Community | int) -> bool:
    """Owners (and site moderators): change roles and what only owners change."""
    return role_of(user, community) == Role.OWNER


def outranks(actor_role: str | None, target_role: str | None) -> bool:
    """Whether a member with `actor_role` may act on one with `target_role` (remove them):
    moderators act on members, owners on members and moderators, nobody on owners."""
    if not is_moderator_role(actor_role) or target_role == Role.OWNER:
        return False
    return _RANK[actor_role] > _RANK[target_role]
