"""Every change to accounts, profiles, identities and site roles goes through here."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection

from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from PIL import Image, UnidentifiedImageError

from accounts.models import Identity, Profile, SignIn, User
from accounts.oidc import Person
from accounts.signals import profile_changed, user_provisioned
from hobbies.errors import Conflict, Invalid, TooLong

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
    # Apps above (the messaging backend) provision their side of the user, idempotently.
    user_provisioned.send(sender=User, user=user)
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
        avatar_check(avatar)
    with transaction.atomic():
        profile = profile_ensure(user=user)
        shown_before = profile.display_name
        profile.display_name, profile.bio, profile.hobbies = display_name, bio, tags
        if clear_avatar and profile.avatar:
            profile.avatar.delete(save=False)
        if avatar is not None:
            profile.avatar.save(f"{user.pk}.img", avatar, save=False)
        profile.save()
        if profile.display_name != shown_before:
            profile_changed.send(sender=User, user=user)
    return profile


def avatar_check(avatar: UploadedFile) -> None:
    """Refuse an avatar that is too large or not a JPEG, PNG, GIF or WebP image (profiles and
    communities alike)."""
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
COMMUNITY_MODERATORS_GROUP = "Community moderators"
# What the admin shows moderators, and the actions they run there (which ask for "change").
_MODERATION_ADMIN_PERMISSIONS = (
    "communities.view_community",
    "communities.view_membership",
    "communities.change_membership",
    "communities.view_joinrequest",
    "communities.change_joinrequest",
    "communities.view_ban",
    "communities.change_ban",
    "communities.view_auditentry",
    "chat.view_channel",
    "chat.view_message",
    "chat.change_message",
    "chat.view_report",
    "chat.change_report",
    "chat.view_heldmessage",
    "chat.change_heldmessage",
)
# Site moderators moderate every community; community moderators (staff given admin access
# by `manage.py grant_admin`) only the ones they moderate or own (`communities.policy`).
SITE_MODERATOR_PERMISSIONS = ("communities.moderate", *_MODERATION_ADMIN_PERMISSIONS)
COMMUNITY_MODERATOR_PERMISSIONS = _MODERATION_ADMIN_PERMISSIONS


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
            shown_before = (user.username, user.display_name)
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
            if (user.username, user.display_name) != shown_before:
                profile_changed.send(sender=User, user=user)
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
    # Admin access given to a community moderator (`community_moderator_admin_set`) stays.
    user.is_staff = bool(roles) or user.groups.filter(name=COMMUNITY_MODERATORS_GROUP).exists()
    user.save(update_fields=["is_staff", "is_superuser"])
    group = _site_moderators_group()
    if "moderator" in roles:
        user.groups.add(group)
    else:
        user.groups.remove(group)


def _site_moderators_group() -> Group:
    return _group_ensure(SITE_MODERATORS_GROUP, SITE_MODERATOR_PERMISSIONS)


def _group_ensure(name: str, permissions: Collection[str]) -> Group:
    """The group, with at least these permissions ("app_label.codename"); others an admin gave
    it are kept."""
    group, _ = Group.objects.get_or_create(name=name)
    wanted = {tuple(perm.split(".", 1)) for perm in permissions}
    candidates = Permission.objects.select_related("content_type").filter(
        codename__in=[codename for _, codename in wanted]
    )
    group.permissions.add(
        *[p for p in candidates if (p.content_type.app_label, p.codename) in wanted]
    )
    return group


def admin_groups_ensure() -> list[Group]:
    """Create the two moderators' groups with their permissions; safe to run again."""
    return [
        _site_moderators_group(),
        _group_ensure(COMMUNITY_MODERATORS_GROUP, COMMUNITY_MODERATOR_PERMISSIONS),
    ]


def community_moderator_admin_set(*, user: User, enabled: bool) -> None:
    """Give (or take back) admin access as a community moderator: staff status and the
    "Community moderators" group. What they see there is scoped to the communities they
    moderate (the caller checks there is one); a site role keeps its staff status."""
    group = _group_ensure(COMMUNITY_MODERATORS_GROUP, COMMUNITY_MODERATOR_PERMISSIONS)
    with transaction.atomic():
        if enabled:
            user.groups.add(group)
            if not user.is_staff:
                user.is_staff = True
                user.save(update_fields=["is_staff"])
            return
        user.groups.remove(group)
        others = user.is_superuser or user.groups.filter(name=SITE_MODERATORS_GROUP).exists()
        if user.is_staff and not others:
            user.is_staff = False
            user.save(update_fields=["is_staff"])
