"""Reads about communities and memberships, with the permission checks built in."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from accounts.models import User
from communities import policy
from communities.models import Community, Invite, JoinRequest, Membership
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


def invite_by_code(code: str) -> tuple[Community, Invite | None]:
    """The community an invite link leads to, and the `Invite` (None: the community's permanent
    link). Unknown codes: `NotFound`; whether the invite may still be used is the service's (and
    the page's) `invite_check`."""
    invite = Invite.objects.select_related("community").filter(code=code).first()
    if invite is not None:
        return invite.community, invite
    community = Community.objects.filter(invite_code=code).first()
    if community is None:
        raise NotFound("This invite link is not valid any more.")
    return community, None


def community_by_invite(code: str) -> Community:
    return invite_by_code(code)[0]


def invites_of(community: Community, *, limit: int = 50) -> list[Invite]:
    """The community's expiring invite links, newest first (revoked and spent ones too)."""
    return list(Invite.objects.filter(community=community).select_related("created_by")[:limit])


def invite_for_moderator(user: User, community: Community, invite_id: int | None) -> Invite:
    invite = Invite.objects.filter(community=community, id=invite_id or 0).first()
    if invite is None or not policy.can_manage_invites(user, community):
        raise NotFound("No such invite link.")
    return invite


def pending_request_count(user: User, community: Community) -> int | None:
    """How many join requests wait, for those who answer them (None for everyone else)."""
    if not policy.can_decide_join_requests(user, community):
        return None
    return JoinRequest.objects.filter(
        community=community, status=JoinRequest.Status.PENDING
    ).count()


def pending_request_counts(user: User) -> dict[int, int]:
    """Waiting join requests per community the user answers them for (site moderators: every
    community), in one query; communities with none are left out."""
    if not user.is_authenticated:
        return {}
    pending = JoinRequest.objects.filter(status=JoinRequest.Status.PENDING)
    if not policy.is_site_moderator(user):
        pending = pending.filter(
            community__memberships__user=user,
            community__memberships__role__in=[Membership.Role.OWNER, Membership.Role.MODERATOR],
        )
    rows = pending.order_by().values("community_id").annotate(n=Count("id"))
    return {row["community_id"]: row["n"] for row in rows}


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
