"""Operator work on the Chime side: set the AppInstance up, and reconcile it with our database.

Used by `manage.py chime_setup` and `manage.py chime_sync`; both are idempotent and return what
they did (or, with `dry_run`, what they would do), one line per change. Our database is the
record for users, channels, memberships, moderators and bans: drift on the Chime side is
repaired there. Messages go the other way: what Chime holds and we do not (sent by other Chime
clients while no bridge ran) is stored here by the bridge's catch-up (`chat.chime_bridge`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from accounts.models import User
from chat.backends.chime import (
    CHANNEL_ID_PREFIX,
    ChannelBan,
    ChimeApi,
    ChimeBackend,
    ChimeConfig,
    error_code,
)
from chat.models import Channel, ChannelMember
from communities.models import Ban, Membership
from communities.policy import active_ban, is_moderator_role, is_site_moderator, role_of
from communities.services import membership_ban_external

MODERATING_ROLES = (Membership.Role.MODERATOR, Membership.Role.OWNER)


@dataclass
class Report:
    dry_run: bool = False
    lines: list[str] = field(default_factory=list)
    changes: int = 0

    def did(self, line: str, action: Callable[[], Any] | None = None) -> None:
        """Record a change; carry it out unless this is a dry run."""
        self.changes += 1
        self.lines.append(("would: " if self.dry_run else "") + line)
        if action is not None and not self.dry_run:
            action()

    def saw(self, line: str) -> None:
        self.lines.append(line)


def pages(call: Callable[..., dict[str, Any]], key: str, **params: Any) -> Iterator[Any]:
    """Every item of a paginated list operation (NextToken)."""
    token: str | None = None
    while True:
        page = call(**params, **({"NextToken": token} if token else {}))
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return


# --- bans made in Chime --------------------------------------------------------------------


def made_in_chime(ban: ChannelBan, config: ChimeConfig) -> bool:
    """Our own channel bans (the mirror of a community ban) are made by the bridge user; any
    other author is a moderator using another Chime client."""
    return ban.by_arn != config.bridge_user_arn


def importable(user: User, channel: Channel) -> bool:
    """Whether a Chime ban can become a community ban here: `membership_ban_external` takes
    plain members and non-members only."""
    return (
        user.is_active
        and not is_site_moderator(user)
        and not is_moderator_role(role_of(user, channel.community))
    )


def ban_reason(channel: Channel, ban: ChannelBan) -> str:
    who = (ban.by_name or ban.by_arn.rsplit("/", 1)[-1] or "someone")[:100]
    return f"Channel ban made in Chime on #{channel.name} by {who}"


def import_ban(channel: Channel, user: User, ban: ChannelBan) -> Ban:
    """A ban made in Chime becomes the community's ban (which then bans, in Chime, on every
    channel of the community, and removes the user from them)."""
    return membership_ban_external(
        community=channel.community, user=user, reason=ban_reason(channel, ban)
    )


# --- chime_setup ---------------------------------------------------------------------------


def chime_setup(
    *, config: ChimeConfig, name: str, retention_days: int = 0, dry_run: bool = False
) -> tuple[str, Report]:
    """Create or adopt the AppInstance, make the bridge user its AppInstanceAdmin, and set
    retention. Returns the AppInstance ARN (empty on a dry run that would create one)."""
    report = Report(dry_run=dry_run)
    api = ChimeApi(config)
    identity = api.identity
    arn = config.app_instance_arn
    if arn:
        api.call(identity, "describe_app_instance", AppInstanceArn=arn)
        report.saw(f"AppInstance {arn}: adopted (from CHIME_APP_INSTANCE_ARN)")
    else:
        found = [
            item["AppInstanceArn"]
            for item in pages(
                lambda **kw: api.call(identity, "list_app_instances", **kw), "AppInstances"
            )
            if item.get("Name") == name
        ]
        if found:
            arn = found[0]
            report.saw(f"AppInstance {arn}: adopted (named {name!r})")
        elif dry_run:
            report.did(f"create AppInstance {name!r}")
            return "", report
        else:
            arn = api.call(
                identity, "create_app_instance", Name=name, ClientRequestToken=f"{name}-setup"[:64]
            )["AppInstanceArn"]
            report.did(f"created AppInstance {name!r}: {arn}")
    config = config.with_instance(arn)
    api = ChimeApi(config)
    bridge = config.bridge_user_arn
    try:
        api.call(api.identity, "describe_app_instance_user", AppInstanceUserArn=bridge)
        report.saw(f"bridge user {bridge}: exists")
    except ClientError as exc:
        if error_code(exc) != "NotFoundException":
            raise
        report.did(
            f"create bridge user {bridge}",
            lambda: api.call(
                api.identity,
                "create_app_instance_user",
                AppInstanceArn=arn,
                AppInstanceUserId=config.bridge_user_id,
                Name="Hobbies bridge",
                ClientRequestToken=config.bridge_user_id[:64],
            ),
        )
    admins = {
        item["Admin"]["Arn"]
        for item in pages(
            lambda **kw: api.call(api.identity, "list_app_instance_admins", **kw),
            "AppInstanceAdmins",
            AppInstanceArn=arn,
        )
    }
    if bridge in admins:
        report.saw("bridge user: already AppInstanceAdmin")
    else:
        report.did(
            "make the bridge user AppInstanceAdmin",
            lambda: api.call(
                api.identity,
                "create_app_instance_admin",
                AppInstanceArn=arn,
                AppInstanceAdminArn=bridge,
            ),
        )
    if retention_days:
        current = api.call(api.identity, "get_app_instance_retention_settings", AppInstanceArn=arn)
        days = (
            current.get("AppInstanceRetentionSettings", {})
            .get("ChannelRetentionSettings", {})
            .get("RetentionDays")
        )
        if days == retention_days:
            report.saw(f"retention: {days} days, unchanged")
        else:
            report.did(
                f"set channel message retention to {retention_days} days (was {days or 'none'})",
                lambda: api.call(
                    api.identity,
                    "put_app_instance_retention_settings",
                    AppInstanceArn=arn,
                    AppInstanceRetentionSettings={
                        "ChannelRetentionSettings": {"RetentionDays": retention_days}
                    },
                ),
            )
    return arn, report


# --- chime_sync ----------------------------------------------------------------------------


def chime_sync(*, backend: ChimeBackend, dry_run: bool = False) -> Report:
    """Make Chime match our database: users, channels, memberships, moderators and bans.

    One way round: a channel ban made in Chime by someone other than the bridge user (a
    moderator on another Chime client) that we do not have becomes a community ban here, as
    the bridge does when it sees one live (unless it would reach a moderator, an owner or site
    staff: then it is lifted). Our own leftover bans are lifted.
    Extra AppInstanceUsers of ours (a user deleted here) and Chime channels with our prefix
    but no channel here are reported, not deleted: deleting in Chime cannot be undone.
    """
    report = Report(dry_run=dry_run)
    config, api = backend.config, backend.api
    messaging = api.messaging
    bridge = config.bridge_user_arn

    def list_of(operation: str, key: str, **params: Any) -> Iterator[Any]:
        return pages(lambda **kw: api.call(messaging, operation, **kw), key, **params)

    # Users.
    remote_users = {
        item["AppInstanceUserArn"]
        for item in pages(
            lambda **kw: api.call(api.identity, "list_app_instance_users", **kw),
            "AppInstanceUsers",
            AppInstanceArn=config.app_instance_arn,
        )
    }
    ours: dict[str, User] = {}
    for user in User.objects.filter(is_active=True).select_related("profile").order_by("id"):
        ours[config.user_arn(user.pk)] = user
        if config.user_arn(user.pk) not in remote_users:
            report.did(
                f"user {user.get_username()} ({user.pk}): create AppInstanceUser",
                partial(backend.ensure_user, user),
            )
    for arn in sorted(remote_users - set(ours) - {bridge}):
        if config.user_pk(arn) is not None:
            report.saw(f"drift: AppInstanceUser {arn} has no active user here (left as is)")

    # Channels.
    remote_channels = {
        item["ChannelArn"]
        for item in list_of(
            "list_channels",
            "Channels",
            AppInstanceArn=config.app_instance_arn,
            Privacy="PRIVATE",
            ChimeBearer=bridge,
        )
    }
    channels = list(Channel.objects.select_related("community").order_by("id"))
    for arn in sorted(remote_channels - {config.channel_arn(c.pk) for c in channels}):
        if f"/channel/{CHANNEL_ID_PREFIX}" in arn:
            report.saw(f"drift: Chime channel {arn} has no channel here (left as is)")

    # Bans made in Chime (by another client's moderator) that we do not have: imported as
    # community bans, as the bridge does live; first, so that what follows compares with them.
    would_import: set[tuple[int, str]] = set()
    for channel in channels:
        arn = config.channel_arn(channel.pk)
        if arn not in remote_channels:
            continue
        for item in list_of("list_channel_bans", "ChannelBans", ChannelArn=arn, ChimeBearer=bridge):
            member = item["Member"]["Arn"]
            banned = ours.get(member)
            key = (channel.community_id, member)
            if banned is None or key in would_import or active_ban(banned, channel.community):
                continue
            in_chime = backend.channel_ban(channel.pk, banned.pk)
            if (
                in_chime is None
                or not made_in_chime(in_chime, config)
                or not importable(banned, channel)
            ):
                continue  # a leftover of ours, or beyond what a Chime ban may reach: lifted below
            would_import.add(key)
            report.did(
                f"#{channel.name} ({channel.pk}, {channel.community.slug}): import the Chime "
                f"ban of {banned.get_username()} as a community ban "
                f"({ban_reason(channel, in_chime)})",
                partial(import_ban, channel, banned, in_chime),
            )
    skip = would_import if dry_run else set()

    members_of: dict[int, set[int]] = {}
    for channel_id, user_id in ChannelMember.objects.values_list("channel_id", "user_id"):
        members_of.setdefault(channel_id, set()).add(user_id)
    moderators_of: dict[int, set[int]] = {}
    for community_id, user_id in Membership.objects.filter(role__in=MODERATING_ROLES).values_list(
        "community_id", "user_id"
    ):
        moderators_of.setdefault(community_id, set()).add(user_id)
    banned_in: dict[int, set[int]] = {}
    for ban in Ban.objects.filter(lifted_at__isnull=True).select_related("user", "community"):
        if active_ban(ban.user, ban.community) is not None:
            banned_in.setdefault(ban.community_id, set()).add(ban.user_id)

    for channel in channels:
        arn = config.channel_arn(channel.pk)
        label = f"#{channel.name} ({channel.pk}, {channel.community.slug})"
        if arn not in remote_channels:
            report.did(f"{label}: create channel", partial(backend.create_channel, channel))
            remote_members: set[str] = set()
            remote_moderators: set[str] = set()
            remote_bans: set[str] = set()
        else:
            remote_members = {
                m["Member"]["Arn"]
                for m in list_of(
                    "list_channel_memberships",
                    "ChannelMemberships",
                    ChannelArn=arn,
                    ChimeBearer=bridge,
                )
            }
            remote_moderators = {
                m["Moderator"]["Arn"]
                for m in list_of(
                    "list_channel_moderators",
                    "ChannelModerators",
                    ChannelArn=arn,
                    ChimeBearer=bridge,
                )
            }
            remote_bans = {
                m["Member"]["Arn"]
                for m in list_of(
                    "list_channel_bans", "ChannelBans", ChannelArn=arn, ChimeBearer=bridge
                )
            }
        wanted_members = {config.user_arn(u) for u in members_of.get(channel.pk, set())}
        wanted_moderators = {
            config.user_arn(u)
            for u in members_of.get(channel.pk, set())
            & moderators_of.get(channel.community_id, set())
        }
        wanted_bans = {config.user_arn(u) for u in banned_in.get(channel.community_id, set())}
        # Lifts first: Chime refuses to add a member back while they are banned.
        for member in sorted(remote_bans - wanted_bans):
            if (channel.community_id, member) in skip:
                continue
            report.did(
                f"{label}: lift ban of {member.rsplit('/', 1)[-1]}",
                partial(
                    backend._delete,
                    "delete_channel_ban",
                    ChannelArn=arn,
                    MemberArn=member,
                    ChimeBearer=bridge,
                ),
            )
        for role, wanted, remote, add, operation, arn_field in (
            (
                "member",
                wanted_members,
                remote_members,
                backend.add_member,
                "delete_channel_membership",
                "MemberArn",
            ),
            (
                "moderator",
                wanted_moderators,
                remote_moderators,
                backend.add_moderator,
                "delete_channel_moderator",
                "ChannelModeratorArn",
            ),
        ):
            for member in sorted(wanted - remote):
                found = ours.get(member)
                if found is not None and (channel.community_id, member) not in skip:
                    report.did(
                        f"{label}: add {role} {found.get_username()}",
                        partial(add, channel, found),
                    )
            for member in sorted(remote - wanted - {bridge}):
                report.did(
                    f"{label}: remove {role} {member.rsplit('/', 1)[-1]}",
                    partial(
                        backend._delete,
                        operation,
                        ChannelArn=arn,
                        ChimeBearer=bridge,
                        **{arn_field: member},
                    ),
                )
        for member in sorted(wanted_bans - remote_bans):
            if (channel.community_id, member) in skip:
                continue
            report.did(
                f"{label}: ban {member.rsplit('/', 1)[-1]}",
                partial(
                    api.call,
                    messaging,
                    "create_channel_ban",
                    ChannelArn=arn,
                    MemberArn=member,
                    ChimeBearer=bridge,
                ),
            )
    if not report.changes:
        report.saw("in sync: nothing to repair")
    return report
