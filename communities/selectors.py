"""Reads about communities and memberships, with the permission checks built in."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from accounts.models import User
from communities import policy
from communities.models import Community, JoinRequest, Membership
from hobbies.errors import Forbidden, NotFound


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


def community_for_moderator(user: User, slug: str) -> tuple[Community, Membership | None]:
    """A community the user moderates (site moderators moderate all, member or not)."""
    community = community_for_viewer(user, slug)
    if not policy.can_moderate(user, community):
        if membership_of(user, community) is None:
            raise Forbidden("Join this community first.")
        raise Forbidden("Only moderators can do that.")
    return community, membership_of(user, community)


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


def join_request_pending(community: Community, user: User) -> bool:
    return JoinRequest.objects.filter(
        community=community, user=user, status=JoinRequest.Status.PENDING
    ).exists()


def community_by_invite(code: str) -> Community:
    community = Community.objects.filter(invite_code=code).first()
    if community is None:
        raise NotFound("This invite link is not valid any more.")
    return community


def join_request_for_moderator(
    user: User, community: Community, request_id: int | None
) -> JoinRequest:
    """A join request of a community the user moderates; else `NotFound`."""
    join_request = (
        JoinRequest.objects.select_related("community", "user")
        .filter(community=community, id=request_id or 0)
        .first()
    )
    if join_request is None or not policy.can_moderate(user, community):
        raise NotFound("No such request.")
    return join_request


def member_of(community: Community, user_id: int | None) -> User:
    """A member of the community by user id; else `NotFound`."""
    member = User.objects.filter(id=user_id or 0, memberships__community=community).first()
    if member is None:
        raise NotFound("No such member.")
    return member


def pending_join_requests(community: Community) -> QuerySet[JoinRequest]:
    return JoinRequest.objects.filter(
        community=community, status=JoinRequest.Status.PENDING
    ).select_related("user__profile")
