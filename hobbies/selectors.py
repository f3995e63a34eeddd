"""Reads about communities and memberships, with the permission checks built in."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from hobbies.errors import Forbidden, NotFound
from hobbies.models import Community, JoinRequest, Membership, User


def membership_of(user: User, community: Community) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(community=community, user=user).first()


def community_for_viewer(user: User, slug: str) -> Community:
    """A community anyone may look at: its name, description and tags, and how to join.

    Private communities are listed too, so people can ask to join them; their channels and
    messages are for members only (`community_for_member`, `channel_for_member`).
    """
    community = Community.objects.filter(slug=slug).first()
    if community is None:
        raise NotFound("No such community.")
    return community


def community_for_member(user: User, slug: str) -> tuple[Community, Membership]:
    community = community_for_viewer(user, slug)
    membership = membership_of(user, community)
    if membership is None:
        raise Forbidden("Join this community first.")
    return community, membership


def community_for_moderator(user: User, slug: str) -> tuple[Community, Membership]:
    community, membership = community_for_member(user, slug)
    if not membership.is_moderator:
        raise Forbidden("Only moderators can do that.")
    return community, membership


def is_site_moderator(user: User) -> bool:
    """Staff with the moderation permission (or superusers) moderate every community."""
    return bool(user.is_authenticated and user.is_active and user.has_perm("chat.moderate"))


def is_moderator(user: User, community_id: int) -> bool:
    if is_site_moderator(user):
        return True
    return Membership.objects.filter(
        community_id=community_id,
        user=user,
        role__in=[Membership.Role.OWNER, Membership.Role.MODERATOR],
    ).exists()


def directory(*, query: str = "", tag: str = "") -> QuerySet[Community]:
    return (
        Community.objects.search(query=query, tag=tag)
        .annotate(member_count=Count("memberships", distinct=True))
        .prefetch_related("tags")
    )


def user_communities(user: User) -> QuerySet[Community]:
    if not user.is_authenticated:
        return Community.objects.none()
    return Community.objects.filter(memberships__user=user).order_by("name")


def community_members(community: Community) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(community=community)
        .select_related("user__profile")
        .order_by("user__username")
    )


def pending_join_requests(community: Community) -> QuerySet[JoinRequest]:
    return JoinRequest.objects.filter(
        community=community, status=JoinRequest.Status.PENDING
    ).select_related("user__profile")
