"""Every change to accounts, profiles, communities and memberships goes through here."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from chat import events
from chat.backends import get_backend
from chat.services import channel_create, community_channels_join, community_channels_leave
from hobbies.errors import Conflict, Forbidden, Invalid, NotFound, TooLong
from hobbies.models import (
    Community,
    Identity,
    JoinRequest,
    Membership,
    Profile,
    SignIn,
    Tag,
    User,
    new_invite_code,
)
from hobbies.selectors import is_moderator, is_site_moderator

if TYPE_CHECKING:
    from hobbies.oidc import Person

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.+-]{2,30}$")
AVATAR_MAX_BYTES = 2 * 1024 * 1024


# --- Accounts and profiles ------------------------------------------------------------------


def user_create(*, username: str, password: str, email: str = "", display_name: str = "") -> User:
    username = (username or "").strip()
    if not USERNAME_RE.match(username):
        raise Invalid("Usernames are 2 to 30 letters, digits or . _ + - characters.")
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict("That username is taken.")
    candidate = User(username=username, email=email)
    try:
        validate_password(password, candidate)
    except ValidationError as exc:
        raise Invalid(" ".join(exc.messages)) from None
    with transaction.atomic():
        user = User.objects.create_user(username=username, email=email, password=password)
        profile_ensure(user=user, display_name=display_name)
    return user


def profile_ensure(*, user: User, display_name: str = "") -> Profile:
    """The user's profile, created on first need. Idempotent."""
    profile, _ = Profile.objects.get_or_create(
        user=user, defaults={"display_name": (display_name or user.get_full_name())[:64]}
    )
    get_backend().ensure_user(user)
    return profile


def profile_update(
    *,
    user: User,
    display_name: str,
    bio: str,
    hobbies: str,
    avatar: UploadedFile | None = None,
    clear_avatar: bool = False,
) -> Profile:
    display_name, bio = display_name.strip(), bio.strip()
    if len(display_name) > 64:
        raise TooLong("A display name has at most 64 characters.")
    if len(bio) > 280:
        raise TooLong("A bio has at most 280 characters.")
    tags = ", ".join(dict.fromkeys(h.strip() for h in hobbies.split(",") if h.strip()))
    if len(tags) > 200:
        raise TooLong("List at most 200 characters of hobbies.")
    if avatar is not None:
        _check_avatar(avatar)
    with transaction.atomic():
        profile = profile_ensure(user=user)
        profile.display_name, profile.bio, profile.hobbies = display_name, bio, tags
        if clear_avatar and profile.avatar:
            profile.avatar.delete(save=False)
        if avatar is not None:
            profile.avatar.save(f"{user.pk}.img", avatar, save=False)
        profile.save()
    return profile


def _check_avatar(avatar: UploadedFile) -> None:
    from PIL import Image, UnidentifiedImageError

    if avatar.size is None or avatar.size > AVATAR_MAX_BYTES:
        raise TooLong("An avatar is at most 2 MB.")
    try:
        with Image.open(avatar) as image:
            image.verify()
            if image.format not in {"JPEG", "PNG", "GIF", "WEBP"}:
                raise Invalid("An avatar must be a JPEG, PNG, GIF or WebP image.")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise Invalid("That file is not an image we can read.") from None
    avatar.seek(0)


# --- Sign-in --------------------------------------------------------------------------------

SITE_MODERATORS_GROUP = "Site moderators"
SITE_MODERATOR_PERMISSIONS = (
    "chat.moderate",
    "chat.view_channel",
    "chat.view_message",
    "hobbies.view_community",
    "hobbies.view_membership",
    "hobbies.change_membership",
    "hobbies.view_joinrequest",
    "hobbies.change_joinrequest",
)


def user_post_login(*, user: User, method: str, ip: str | None, user_agent: str) -> SignIn:
    """Run after every successful sign-in, whatever the way in (password or provider).

    Provisions the member profile (and, through it, the messaging backend's user) on first
    sign-in and records this sign-in. Idempotent apart from the record; all or nothing.
    """
    if method not in SignIn.Method.values:
        raise Invalid(f"Unknown sign-in method {method!r}.")
    try:
        address = str(ipaddress.ip_address((ip or "").strip()))
    except ValueError:
        address = None
    with transaction.atomic():
        profile_ensure(user=user)  # also the messaging backend's `ensure_user`
        return SignIn.objects.create(
            user=user, method=method, ip=address, user_agent=(user_agent or "")[:255]
        )


def identity_sync(*, person: Person) -> User:
    """The user behind a provider identity, created on first sign-in and kept in step with the
    provider's claims (username while free, names, email, site roles) on every later one.

    Found by (issuer, subject) only: a local account with the same email stays another user.
    Two first sign-ins of one person at once: the loser of the race finds the winner's user.
    """
    try:
        return _identity_sync(person)
    except IntegrityError:
        return _identity_sync(person)


def _identity_sync(person: Person) -> User:
    with transaction.atomic():
        identity = (
            Identity.objects.select_for_update()
            .select_related("user")
            .filter(issuer=person.issuer, subject=person.subject)
            .first()
        )
        if identity is None:
            user = User(
                username=_free_username(person.username, person.subject),
                email=person.email,
                first_name=person.first_name,
                last_name=person.last_name,
            )
            user.set_unusable_password()
            user.save()
            Identity.objects.create(user=user, issuer=person.issuer, subject=person.subject)
        else:
            user = identity.user
            before = user.get_full_name()
            if user.username != person.username and not _username_taken(person.username, user):
                user.username = person.username
            user.email = person.email
            user.first_name, user.last_name = person.first_name, person.last_name
            user.save(update_fields=["username", "email", "first_name", "last_name"])
            profile = Profile.objects.filter(user=user).first()
            # Names follow the provider unless the member chose another display name here.
            if profile is not None and profile.display_name in ("", before[:64]):
                profile.display_name = user.get_full_name()[:64]
                profile.save(update_fields=["display_name"])
        site_roles_set(user=user, roles=person.roles)
    return user


def _username_taken(username: str, user: User | None = None) -> bool:
    others = User.objects.filter(username__iexact=username)
    if user is not None:
        others = others.exclude(pk=user.pk)
    return others.exists()


def _free_username(wanted: str, subject: str) -> str:
    """`wanted` if nobody has it, else `wanted` with a suffix made from the subject."""
    if not _username_taken(wanted):
        return wanted
    suffix = re.sub(r"[^A-Za-z0-9]", "", subject)[:6] or "1"
    for n in range(100):
        candidate = f"{wanted[: 30 - len(suffix) - 3]}-{suffix}{n or ''}"
        if not _username_taken(candidate):
            return candidate
    raise Conflict("No free username for this account.")


def site_roles_set(*, user: User, roles: Collection[str]) -> None:
    """Give exactly these site roles: `moderator` (staff with the moderation permissions)
    and `admin` (superuser). Roles not listed are taken away."""
    unknown = set(roles) - {"moderator", "admin"}
    if unknown:
        raise Invalid(f"Unknown site roles: {', '.join(sorted(unknown))}.")
    user.is_superuser = "admin" in roles
    user.is_staff = bool(roles)
    user.save(update_fields=["is_staff", "is_superuser"])
    group = _site_moderators_group()
    if "moderator" in roles:
        user.groups.add(group)
    else:
        user.groups.remove(group)


def _site_moderators_group() -> Group:
    group, created = Group.objects.get_or_create(name=SITE_MODERATORS_GROUP)
    if created or not group.permissions.exists():
        wanted = {tuple(name.split(".", 1)) for name in SITE_MODERATOR_PERMISSIONS}
        candidates = Permission.objects.select_related("content_type").filter(
            codename__in=[codename for _, codename in wanted]
        )
        group.permissions.set(
            [p for p in candidates if (p.content_type.app_label, p.codename) in wanted]
        )
    return group


# --- Communities ----------------------------------------------------------------------------


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
    name = name.strip()
    if not name:
        raise Invalid("A community needs a name.")
    if len(name) > 80:
        raise TooLong("A community name has at most 80 characters.")
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
        channel_create(community=community, name="general", by=None, topic="Say hello!")
    return community


def community_update(
    *, community: Community, by: User, description: str, tags: Iterable[str], visibility: str
) -> Community:
    if not is_moderator(by, community.id):
        raise Forbidden("Only moderators can change the community.")
    if visibility not in Community.Visibility.values:
        raise Invalid("Visibility is public or private.")
    if len(description) > 2000:
        raise TooLong("A description has at most 2000 characters.")
    with transaction.atomic():
        community.description = description
        community.visibility = visibility
        community.save(update_fields=["description", "visibility"])
        community.tags.set(_tags(tags))
    return community


def community_invite_reset(*, community: Community, by: User) -> str:
    if not is_moderator(by, community.id):
        raise Forbidden("Only moderators can reset the invite link.")
    community.invite_code = new_invite_code()
    community.save(update_fields=["invite_code"])
    return community.invite_code


def _role(user: User, community: Community) -> str | None:
    """The user's role in the community; site moderators act as owners."""
    if is_site_moderator(user):
        return Membership.Role.OWNER
    return (
        Membership.objects.filter(community=community, user=user)
        .values_list("role", flat=True)
        .first()
    )


# --- Memberships ----------------------------------------------------------------------------


def _membership_add(community: Community, user: User) -> Membership:
    membership, created = Membership.objects.get_or_create(community=community, user=user)
    if created:
        community_channels_join(community=community, user=user)
    return membership


def membership_join(*, community: Community, user: User) -> Membership:
    """Join a public community at once. Idempotent."""
    if not community.is_public:
        raise Forbidden("This community is private: ask to join or use an invite link.")
    with transaction.atomic():
        return _membership_add(community, user)


def membership_join_by_invite(*, code: str, user: User) -> Membership:
    community = Community.objects.filter(invite_code=code).first()
    if community is None:
        raise NotFound("This invite link is not valid any more.")
    with transaction.atomic():
        membership = _membership_add(community, user)
        JoinRequest.objects.filter(
            community=community, user=user, status=JoinRequest.Status.PENDING
        ).update(status=JoinRequest.Status.APPROVED, decided_at=timezone.now())
    return membership


def join_request_create(*, community: Community, user: User, message: str = "") -> JoinRequest:
    if community.is_public:
        raise Invalid("This community is public: join it directly.")
    if Membership.objects.filter(community=community, user=user).exists():
        raise Conflict("You are already a member.")
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
    if not is_moderator(by, request.community_id):
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
        community_channels_leave(community=community, user=user)
        membership.delete()


def membership_remove(*, community: Community, user: User, by: User) -> None:
    """A moderator removes a member; the member's sockets stop receiving at once."""
    by_role = _role(by, community)
    target = Membership.objects.filter(community=community, user=user).first()
    if target is None:
        raise NotFound("Not a member.")
    if by_role not in (Membership.Role.OWNER, Membership.Role.MODERATOR):
        raise Forbidden("Only moderators can remove members.")
    if target.role == Membership.Role.OWNER or (
        target.role == Membership.Role.MODERATOR and by_role != Membership.Role.OWNER
    ):
        raise Forbidden("Only an owner can remove moderators; owners cannot be removed.")
    with transaction.atomic():
        community_channels_leave(community=community, user=user)
        target.delete()


def membership_set_role(*, community: Community, user: User, role: str, by: User) -> Membership:
    if _role(by, community) != Membership.Role.OWNER:
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
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


# --- Sessions -------------------------------------------------------------------------------


def sockets_close_for_session(*, user_id: int, session_key: str | None) -> None:
    """Close the live sockets opened with this session (on log-out)."""
    from chat.session import session_hash

    if session_key:
        events.control_on_commit(
            events.user_key(user_id), "close", session=session_hash(session_key)
        )
