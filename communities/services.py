"""Every change to communities, memberships and join requests goes through here.

What must follow in chat (a first channel, channel memberships, closed subscriptions) is done
by chat's receivers of the signals sent here inside each transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import User
from accounts.services import avatar_check
from communities import policy
from communities.models import (
    AuditEntry,
    Ban,
    Community,
    Invite,
    JoinRequest,
    Membership,
    Tag,
    new_invite_code,
)
from communities.signals import (
    community_created,
    member_joined,
    member_left,
    member_restricted,
    member_role_changed,
    member_unbanned,
)
from hobbies.errors import Conflict, Forbidden, Gone, Invalid, NotFound, TooLong


def _tags(names: Iterable[str]) -> list[Tag]:
    cleaned = [slugify(n)[:40] for n in names]
    return [Tag.objects.get_or_create(name=n)[0] for n in dict.fromkeys(c for c in cleaned if c)]


def community_create(
    *,
    name: str,
    slug: str = "",
    description: str = "",
    tags: Iterable[str] = (),
    visibility: str = Community.Visibility.PUBLIC,
    by: User,
) -> Community:
    """Create a community owned by `by`, with its `general` channel."""
    name = _clean_name(name)
    slug = slugify(slug or name)[:50]
    if not slug:
        raise Invalid("A community needs a name with letters or digits.")
    if visibility not in Community.Visibility.values:
        raise Invalid("Visibility is public or private.")
    if len(description) > 2000:
        raise TooLong("A description has at most 2000 characters.")
    with transaction.atomic():
        if Community.objects.filter(slug=slug).exists():
            raise Conflict(f"The address /c/{slug}/ is taken; pick another name.")
        community = Community.objects.create(
            name=name, slug=slug, description=description, visibility=visibility, created_by=by
        )
        community.tags.set(_tags(tags))
        Membership.objects.create(community=community, user=by, role=Membership.Role.OWNER)
        community_created.send(sender=Community, community=community, by=by)
    return community


RULES_MAX = 4000


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise Invalid("A community needs a name.")
    if len(name) > 80:
        raise TooLong("A community name has at most 80 characters.")
    return name


def community_update(
    *,
    community: Community,
    by: User,
    description: str,
    tags: Iterable[str],
    visibility: str,
    name: str | None = None,
    rules: str | None = None,
    avatar: UploadedFile | None = None,
    clear_avatar: bool = False,
) -> Community:
    """Change the community's profile (owners): name, description, rules, tags, visibility and
    avatar. `name`/`rules` None: unchanged. The address (slug) stays, so links keep working."""
    if not policy.can_edit_community(by, community):
        raise Forbidden("Only owners can change the community.")
    if visibility not in Community.Visibility.values:
        raise Invalid("Visibility is public or private.")
    if len(description) > 2000:
        raise TooLong("A description has at most 2000 characters.")
    if rules is not None and len(rules) > RULES_MAX:
        raise TooLong(f"The rules have at most {RULES_MAX} characters.")
    if name is not None:
        name = _clean_name(name)
    if avatar is not None:
        avatar_check(avatar)
    with transaction.atomic():
        before: dict[str, Any] = dict(
            Community.objects.filter(pk=community.pk)
            .values("name", "description", "rules", "visibility", "avatar")
            .get()
        )
        before_tags = sorted(community.tags.values_list("name", flat=True))
        community.description = description
        community.visibility = visibility
        if name is not None:
            community.name = name
        if rules is not None:
            community.rules = rules
        if (clear_avatar or avatar is not None) and community.avatar:
            community.avatar.delete(save=False)
        if avatar is not None:
            community.avatar.save(f"{community.pk}.img", avatar, save=False)
        community.save(update_fields=["name", "description", "rules", "visibility", "avatar"])
        community.tags.set(_tags(tags))
        after_tags = sorted(community.tags.values_list("name", flat=True))
        after: dict[str, Any] = {
            "name": community.name,
            "description": community.description,
            "rules": community.rules,
            "visibility": community.visibility,
            "avatar": community.avatar.name or "",
        }
        changed = {k: after[k] for k in after if after[k] != (before[k] or "")}
        if after_tags != before_tags:
            changed["tags"] = after_tags
        if changed:
            audit_record(
                community=community,
                by=by,
                action=AuditEntry.Action.COMMUNITY_UPDATE,
                detail={"changed": sorted(changed), "name": community.name},
            )
    return community


def community_transfer(*, community: Community, to: User, by: User) -> Membership:
    """Make `to` (a member) the owner; whoever owned it becomes a moderator. Owners and site
    moderators may."""
    if not policy.can_transfer_ownership(by, community):
        raise Forbidden("Only the owner can transfer ownership.")
    with transaction.atomic():
        target = Membership.objects.select_for_update().filter(community=community, user=to).first()
        if target is None:
            raise NotFound("Ownership goes to a member of the community.")
        if target.role == Membership.Role.OWNER:
            raise Conflict("They already own this community.")
        previous = list(
            Membership.objects.select_for_update().filter(
                community=community, role=Membership.Role.OWNER
            )
        )
        for owner in previous:
            owner.role = Membership.Role.MODERATOR
            owner.save(update_fields=["role"])
        target.role = Membership.Role.OWNER
        target.save(update_fields=["role"])
        audit_record(
            community=community,
            by=by,
            action=AuditEntry.Action.TRANSFER,
            target=to,
            detail={"previous_owners": [m.user_id for m in previous]},
        )
    return target


def community_invite_reset(*, community: Community, by: User) -> str:
    """Replace the permanent invite link: the old one stops working."""
    if not policy.can_manage_invites(by, community):
        raise Forbidden("Only moderators can reset the invite link.")
    with transaction.atomic():
        community.invite_code = new_invite_code()
        community.save(update_fields=["invite_code"])
        audit_record(community=community, by=by, action=AuditEntry.Action.INVITE_RESET)
    return community.invite_code


INVITE_MAX_USES = 10_000
INVITE_MAX_DURATION = timedelta(days=365)


def invite_create(
    *,
    community: Community,
    by: User,
    expires_in: timedelta | None = None,
    max_uses: int | None = None,
) -> Invite:
    """A new invite link, valid for `expires_in` (None: no end) and `max_uses` joins (None:
    no limit), until revoked."""
    if not policy.can_manage_invites(by, community):
        raise Forbidden("Only moderators can make invite links.")
    if expires_in is not None and not timedelta(minutes=5) <= expires_in <= INVITE_MAX_DURATION:
        raise Invalid("An invite link lasts from 5 minutes to a year.")
    if max_uses is not None and not 1 <= max_uses <= INVITE_MAX_USES:
        raise Invalid(f"An invite link is used from 1 to {INVITE_MAX_USES} times.")
    with transaction.atomic():
        invite = Invite.objects.create(
            community=community,
            created_by=by,
            expires_at=timezone.now() + expires_in if expires_in is not None else None,
            max_uses=max_uses,
        )
        audit_record(
            community=community,
            by=by,
            action=AuditEntry.Action.INVITE_CREATE,
            undo=AuditEntry.Action.INVITE_REVOKE,
            detail={
                "invite": invite.id,
                "expires_at": invite.expires_at.isoformat() if invite.expires_at else None,
                "max_uses": max_uses,
            },
        )
    return invite


def invite_revoke(*, invite: Invite, by: User) -> Invite:
    """Stop an invite link from working (anyone who joined with it stays)."""
    if not policy.can_manage_invites(by, invite.community_id):
        raise Forbidden("Only moderators can revoke invite links.")
    if invite.revoked_at is not None:
        raise Conflict("This invite link was already revoked.")
    with transaction.atomic():
        invite.revoked_at = timezone.now()
        invite.save(update_fields=["revoked_at"])
        audit_record(
            community=invite.community_id,
            by=by,
            action=AuditEntry.Action.INVITE_REVOKE,
            detail={"invite": invite.id, "uses": invite.uses},
        )
    return invite


def invite_check(invite: Invite) -> None:
    """Say clearly why an invite link no longer works."""
    state = invite.state()
    if state == "revoked":
        raise Gone("This invite link was revoked. Ask for a new one.")
    if state == "expired":
        raise Gone("This invite link has expired. Ask for a new one.")
    if state == "used_up":
        raise Gone("This invite link has been used as many times as it allows. Ask for a new one.")


# --- Memberships ----------------------------------------------------------------------------


def _membership_add(community: Community, user: User) -> Membership:
    policy.check_not_banned(user, community)
    membership, created = Membership.objects.get_or_create(community=community, user=user)
    if created:
        member_joined.send(sender=Membership, community=community, user=user)
    return membership


def membership_join(*, community: Community, user: User) -> Membership:
    """Join a public community at once. Idempotent."""
    if not community.is_public:
        raise Forbidden("This community is private: ask to join or use an invite link.")
    with transaction.atomic():
        return _membership_add(community, user)


def membership_join_by_invite(*, code: str, user: User) -> Membership:
    """Join with an invite link: an expiring one (`Invite`, which counts the use) or the
    community's permanent one. Banned users are refused whatever the link."""
    with transaction.atomic():
        invite = Invite.objects.select_for_update().filter(code=code).first()
        if invite is not None:
            community = Community.objects.get(pk=invite.community_id)
        else:
            found = Community.objects.filter(invite_code=code).first()
            if found is None:
                raise NotFound("This invite link is not valid any more.")
            community = found
        already = Membership.objects.filter(community=community, user=user).first()
        if already is not None:
            return already
        if invite is not None:
            invite_check(invite)
        membership = _membership_add(community, user)
        if invite is not None:
            invite.uses += 1
            invite.save(update_fields=["uses"])
        JoinRequest.objects.filter(
            community=community, user=user, status=JoinRequest.Status.PENDING
        ).update(status=JoinRequest.Status.APPROVED, decided_at=timezone.now())
    return membership


def join_request_create(*, community: Community, user: User, message: str = "") -> JoinRequest:
    if community.is_public:
        raise Invalid("This community is public: join it directly.")
    if Membership.objects.filter(community=community, user=user).exists():
        raise Conflict("You are already a member.")
    policy.check_not_banned(user, community)
    if len(message) > 280:
        raise TooLong("A request message has at most 280 characters.")
    with transaction.atomic():
        pending = JoinRequest.objects.filter(
            community=community, user=user, status=JoinRequest.Status.PENDING
        ).first()
        if pending is not None:
            return pending
        return JoinRequest.objects.create(community=community, user=user, message=message)


def join_request_decide(*, request: JoinRequest, by: User, approve: bool) -> JoinRequest:
    if not policy.can_decide_join_requests(by, request.community_id):
        raise Forbidden("Only moderators can answer join requests.")
    if request.status != JoinRequest.Status.PENDING:
        raise Conflict("This request was already answered.")
    with transaction.atomic():
        request.status = JoinRequest.Status.APPROVED if approve else JoinRequest.Status.REJECTED
        request.decided_by = by
        request.decided_at = timezone.now()
        request.save(update_fields=["status", "decided_by", "decided_at"])
        if approve:
            _membership_add(request.community, request.user)
        audit_record(
            community=request.community_id,
            by=by,
            action=AuditEntry.Action.JOIN_APPROVE if approve else AuditEntry.Action.JOIN_REJECT,
            target=request.user,
            detail={"request": request.id},
        )
    return request


def membership_leave(*, community: Community, user: User) -> None:
    membership = Membership.objects.filter(community=community, user=user).first()
    if membership is None:
        return
    if membership.role == Membership.Role.OWNER:
        owners = Membership.objects.filter(community=community, role=Membership.Role.OWNER)
        if owners.count() == 1:
            raise Invalid("You are the only owner: make someone else owner before leaving.")
    with transaction.atomic():
        member_left.send(sender=Membership, community=community, user=user)
        membership.delete()


def membership_remove(*, community: Community, user: User, by: User) -> None:
    """A moderator removes a member; the member's sockets stop receiving at once."""
    by_role = policy.role_of(by, community)
    target = Membership.objects.filter(community=community, user=user).first()
    if target is None:
        raise NotFound("Not a member.")
    if not policy.is_moderator_role(by_role):
        raise Forbidden("Only moderators can remove members.")
    if not policy.outranks(by_role, target.role):
        raise Forbidden("Only an owner can remove moderators; owners cannot be removed.")
    with transaction.atomic():
        member_left.send(sender=Membership, community=community, user=user)
        target.delete()
        audit_record(community=community, by=by, action=AuditEntry.Action.REMOVE, target=user)


def membership_set_role(*, community: Community, user: User, role: str, by: User) -> Membership:
    """Appoint or demote a moderator (owners; to hand the community over, `community_transfer`)."""
    if not policy.can_set_roles(by, community):
        raise Forbidden("Only owners can change roles.")
    if role not in Membership.Role.values:
        raise Invalid("Unknown role.")
    membership = Membership.objects.filter(community=community, user=user).first()
    if membership is None:
        raise NotFound("Not a member.")
    if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER:
        owners = Membership.objects.filter(community=community, role=Membership.Role.OWNER)
        if owners.count() == 1:
            raise Invalid("A community keeps at least one owner.")
    if membership.role == role:
        return membership
    with transaction.atomic():
        before = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        audit_record(
            community=community,
            by=by,
            action=AuditEntry.Action.ROLE,
            target=user,
            detail={"from": before, "to": role},
        )
        member_role_changed.send(
            sender=Membership, community=community, user=user, before=before, role=role
        )
    return membership


# --- Moderation: the audit log, timeouts, bans, the word filter -----------------------------

TIMEOUT_MIN = timedelta(minutes=10)
TIMEOUT_MAX = timedelta(days=28)
REASON_MAX = 500
FILTER_MAX_WORDS = 200


def audit_record(
    *,
    community: Community | int,
    by: User | None,
    action: str,
    target: User | None = None,
    message_id: int | None = None,
    reason: str = "",
    undo: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Write one audit log entry; services call it inside the transaction of their change."""
    community_id = community if isinstance(community, int) else community.id
    return AuditEntry.objects.create(
        community_id=community_id,
        actor=by,
        action=action,
        target=target,
        message_id=message_id,
        reason=reason[:REASON_MAX],
        undo=undo,
        detail=detail or {},
    )


def _clean_reason(reason: str) -> str:
    reason = reason.strip()
    if len(reason) > REASON_MAX:
        raise TooLong(f"A reason has at most {REASON_MAX} characters.")
    return reason


def _check_may_act_on(by: User, community: Community, user: User, what: str) -> None:
    if by.pk == user.pk:
        raise Forbidden(f"You cannot {what} yourself.")
    if not policy.can_moderate(by, community):
        raise Forbidden(f"Only moderators can {what} members.")
    if not policy.can_act_on(by, community, user):
        raise Forbidden(f"Only an owner can {what} a moderator; nobody can {what} an owner.")


def membership_timeout(
    *, community: Community, user: User, by: User, until: datetime, reason: str = ""
) -> Membership:
    """Time out a member until `until` (10 minutes to 28 days from now): they read, but cannot
    post, react, upload or edit there. It ends by itself: the checks compare with now."""
    _check_may_act_on(by, community, user, "time out")
    reason = _clean_reason(reason)
    now = timezone.now()
    if not TIMEOUT_MIN - timedelta(seconds=5) <= until - now <= TIMEOUT_MAX:
        raise Invalid("A timeout lasts from 10 minutes to 28 days.")
    membership = Membership.objects.filter(community=community, user=user).first()
    if membership is None:
        raise NotFound("Not a member.")
    with transaction.atomic():
        membership.timeout_until = until
        membership.save(update_fields=["timeout_until"])
        audit_record(
            community=community,
            by=by,
            action=AuditEntry.Action.TIMEOUT,
            target=user,
            reason=reason,
            undo=AuditEntry.Action.TIMEOUT_END,
            detail={"until": until.isoformat()},
        )
        member_restricted.send(
            sender=Membership, community=community, user=user, kind="timeout", until=until
        )
    return membership


def membership_timeout_end(*, community: Community, user: User, by: User) -> Membership:
    _check_may_act_on(by, community, user, "time out")
    membership = Membership.objects.filter(community=community, user=user).first()
    if membership is None:
        raise NotFound("Not a member.")
    if membership.timeout_until is None or membership.timeout_until <= timezone.now():
        raise Conflict("This member is not timed out.")
    with transaction.atomic():
        membership.timeout_until = None
        membership.save(update_fields=["timeout_until"])
        audit_record(community=community, by=by, action=AuditEntry.Action.TIMEOUT_END, target=user)
        member_restricted.send(
            sender=Membership, community=community, user=user, kind="timeout_end", until=None
        )
    return membership


def membership_ban(
    *, community: Community, user: User, by: User, until: datetime | None = None, reason: str = ""
) -> Ban:
    """Ban a user (member or not) until `until` (None: until lifted): they leave every channel
    at once, their sockets stop receiving the community's events, and they cannot rejoin, ask
    to join or use an invite while the ban lasts."""
    _check_may_act_on(by, community, user, "ban")
    return _ban(community=community, user=user, by=by, until=until, reason=reason)


def membership_ban_external(*, community: Community, user: User, reason: str) -> Ban:
    """A ban made outside the app, by a moderator of the messaging service our chat is mirrored
    to (a channel ban in Chime): the same ban as `membership_ban`, without an end, with no app
    user as its author (the moderation log shows "system"). No moderator of ours stands
    behind it, so it reaches plain members and non-members only: never a moderator, an owner
    or site staff (Forbidden). A user already banned here keeps that ban (returned as is)."""
    current = policy.active_ban(user, community)
    if current is not None:
        return current
    if (
        not user.is_active
        or policy.is_site_moderator(user)
        or policy.is_moderator_role(policy.role_of(user, community))
    ):
        raise Forbidden("A ban made outside the app cannot reach a moderator or an owner.")
    return _ban(community=community, user=user, by=None, until=None, reason=reason)


def _ban(
    *, community: Community, user: User, by: User | None, until: datetime | None, reason: str
) -> Ban:
    reason = _clean_reason(reason)
    if until is not None and until <= timezone.now():
        raise Invalid("A ban ends in the future.")
    membership = Membership.objects.filter(community=community, user=user).first()
    if membership is not None and membership.role == Membership.Role.OWNER:
        owners = Membership.objects.filter(community=community, role=Membership.Role.OWNER)
        if owners.count() == 1:
            raise Invalid("The only owner cannot be banned.")
    with transaction.atomic():
        # An earlier ban that ran out is closed, so the new one is the one open ban.
        Ban.objects.filter(community=community, user=user, lifted_at__isnull=True).update(
            lifted_at=timezone.now()
        )
        ban = Ban.objects.create(
            community=community, user=user, reason=reason, until=until, created_by=by
        )
        JoinRequest.objects.filter(
            community=community, user=user, status=JoinRequest.Status.PENDING
        ).update(status=JoinRequest.Status.REJECTED, decided_by=by, decided_at=timezone.now())
        if membership is not None:
            member_left.send(sender=Membership, community=community, user=user)
            membership.delete()
        audit_record(
            community=community,
            by=by,
            action=AuditEntry.Action.BAN,
            target=user,
            reason=reason,
            undo=AuditEntry.Action.UNBAN,
            detail={"until": until.isoformat() if until else None},
        )
        member_restricted.send(
            sender=Membership, community=community, user=user, kind="ban", until=until
        )
    return ban


def membership_unban(*, community: Community, user: User, by: User) -> Ban:
    if not policy.can_moderate(by, community):
        raise Forbidden("Only moderators can lift bans.")
    ban = policy.active_ban(user, community)
    if ban is None:
        raise NotFound("This user is not banned.")
    with transaction.atomic():
        ban.lifted_at = timezone.now()
        ban.lifted_by = by
        ban.save(update_fields=["lifted_at", "lifted_by"])
        audit_record(community=community, by=by, action=AuditEntry.Action.UNBAN, target=user)
        member_unbanned.send(sender=Membership, community=community, user=user)
    return ban


def _clean_words(text: str) -> str:
    words = [" ".join(line.split()).lower() for line in text.replace("\r", "").split("\n")]
    kept = list(dict.fromkeys(w for w in words if w))
    if len(kept) > FILTER_MAX_WORDS or any(len(w) > 100 for w in kept):
        raise TooLong(f"A filter has at most {FILTER_MAX_WORDS} words of 100 characters.")
    return "\n".join(kept)


def community_filter_set(
    *, community: Community, by: User, blocked_words: str, held_words: str
) -> Community:
    """Set the word filter: one word or phrase per line."""
    if not policy.can_moderate(by, community):
        raise Forbidden("Only moderators can change the word filter.")
    blocked, held = _clean_words(blocked_words), _clean_words(held_words)
    with transaction.atomic():
        before = {"blocked": community.blocked_words, "held": community.held_words}
        community.blocked_words, community.held_words = blocked, held
        community.save(update_fields=["blocked_words", "held_words"])
        audit_record(
            community=community,
            by=by,
            action=AuditEntry.Action.FILTER,
            detail={"before": before, "blocked": blocked, "held": held},
        )
    return community
