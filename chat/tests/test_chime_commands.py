"""`chime_setup` and `chime_sync` against the fake Chime on loopback."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from chat.backends.chime import ChimeConfig

pytestmark = pytest.mark.django_db(transaction=True)


def run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def test_setup_is_idempotent_and_sets_retention(chime, settings):
    arn = settings.CHIME_APP_INSTANCE_ARN
    again = run("chime_setup")
    assert "adopted (from CHIME_APP_INSTANCE_ARN)" in again
    assert "bridge user" in again and "already AppInstanceAdmin" in again
    assert again.strip().endswith("0 change(s).")
    assert run("chime_setup", "--retention-days", "30").count("set channel message retention") == 1
    assert chime.retention[arn] == 30
    assert "30 days, unchanged" in run("chime_setup", "--retention-days", "30")


def test_setup_adopts_an_instance_by_name(chime, settings):
    settings.CHIME_APP_INSTANCE_ARN = ""
    out = run("chime_setup")
    assert "adopted (named 'hobbies')" in out
    assert len(chime.instances) == 1


def test_setup_dry_run_creates_nothing(fake_chime, chime, settings):
    settings.CHIME_APP_INSTANCE_ARN = ""
    out = run("chime_setup", "--name", "another", "--dry-run")
    assert "would: create AppInstance 'another'" in out
    assert len(chime.instances) == 1


def test_sync_reports_and_repairs_drift(chime, alice, bob, general, community):
    cfg = ChimeConfig.from_settings()
    assert "in sync" in run("chime_sync")
    channel = chime.channels[cfg.channel_arn(general.pk)]
    # Drift: bob dropped from the channel, a stranger added, alice no longer a moderator,
    # and a channel missing altogether.
    del channel.members[cfg.user_arn(bob.pk)]
    stranger = cfg.user_arn(999999)
    chime.users[stranger] = {"AppInstanceUserArn": stranger, "Name": "x", "Metadata": ""}
    channel.members[stranger] = "DEFAULT"
    channel.moderators.discard(cfg.user_arn(alice.pk))
    chime.channels.pop(cfg.channel_arn(general.pk))
    chime.channels[cfg.channel_arn(general.pk)] = channel
    dry = run("chime_sync", "--dry-run")
    assert f"would: #general ({general.pk}, {community.slug}): add member {bob.username}" in dry
    assert "would: #general" in dry and "remove member hobbies-user-999999" in dry
    assert f"add moderator {alice.username}" in dry
    assert "drift: AppInstanceUser" in dry and "hobbies-user-999999" in dry
    assert dry.strip().endswith("3 drift(s) to repair.")
    assert cfg.user_arn(bob.pk) not in channel.members  # nothing changed
    out = run("chime_sync")
    assert out.strip().endswith("3 drift(s) repaired.")
    assert cfg.user_arn(bob.pk) in channel.members
    assert stranger not in channel.members
    assert cfg.user_arn(alice.pk) in channel.moderators
    assert "in sync" in run("chime_sync")


def test_sync_removes_a_moderator_chime_has_and_we_do_not(chime, alice, bob, general):
    cfg = ChimeConfig.from_settings()
    channel = chime.channels[cfg.channel_arn(general.pk)]
    channel.moderators.add(cfg.user_arn(bob.pk))  # made moderator in Chime directly
    dry = run("chime_sync", "--dry-run")
    assert f"remove moderator hobbies-user-{bob.pk}" in dry
    assert cfg.user_arn(bob.pk) in channel.moderators  # nothing changed
    out = run("chime_sync")
    assert out.strip().endswith("1 drift(s) repaired.")
    assert cfg.user_arn(bob.pk) not in channel.moderators
    assert cfg.user_arn(bob.pk) in channel.members  # still a member
    assert cfg.user_arn(alice.pk) in channel.moderators
    assert "in sync" in run("chime_sync")


def test_sync_creates_what_chime_lacks(chime, alice, general, settings):
    cfg = ChimeConfig.from_settings()
    chime.channels.pop(cfg.channel_arn(general.pk))
    chime.users.pop(cfg.user_arn(alice.pk))
    out = run("chime_sync")
    assert f"user {alice.username} ({alice.pk}): create AppInstanceUser" in out
    assert "#general" in out and "create channel" in out
    assert cfg.user_arn(alice.pk) in chime.channels[cfg.channel_arn(general.pk)].members
    assert "in sync" in run("chime_sync")


def test_sync_pages_through_long_lists(chime, make_user, community, general):
    from communities.services import membership_join

    for _ in range(60):  # more than one page (50) of members and users
        membership_join(community=community, user=make_user())
    assert "in sync" in run("chime_sync")


def test_sync_imports_a_ban_made_in_chime(chime, alice, bob, carol, community, general):
    from chat.models import Channel, ChannelMember
    from chat.services import channel_create
    from communities.models import AuditEntry, Ban

    cfg = ChimeConfig.from_settings()
    lenses = channel_create(community=community, name="lenses", by=alice)
    assert "in sync" in run("chime_sync")
    messaging = chime.channels[cfg.channel_arn(general.pk)]
    alice_arn, bob_arn, carol_arn = (cfg.user_arn(u.pk) for u in (alice, bob, carol))
    # No bridge runs: alice's other Chime client bans bob in #general; and a leftover ban of
    # ours (made by the bridge user) of carol, whom we do not ban.
    from chat.backends.chime import ChimeBackend

    api = ChimeBackend().api
    api.messaging.create_channel_ban(
        ChannelArn=cfg.channel_arn(general.pk), MemberArn=bob_arn, ChimeBearer=alice_arn
    )
    lenses_remote = chime.channels[cfg.channel_arn(lenses.pk)]
    api.messaging.create_channel_ban(
        ChannelArn=cfg.channel_arn(lenses.pk),
        MemberArn=carol_arn,
        ChimeBearer=cfg.bridge_user_arn,
    )
    dry = run("chime_sync", "--dry-run")
    assert (
        f"would: #general ({general.pk}, {community.slug}): import the Chime ban of bob as a "
        "community ban (Channel ban made in Chime on #general by Alice Adams)"
    ) in dry
    lifted = f"would: #lenses ({lenses.pk}, {community.slug}): lift ban of hobbies-user-{carol.pk}"
    assert lifted in dry
    assert f"add member {carol.username}" in dry  # carol goes back into #lenses
    assert "add member bob" not in dry and "ban hobbies-user" not in dry
    assert dry.strip().endswith("3 drift(s) to repair.")
    # Nothing changed.
    assert not Ban.objects.filter(user=bob).exists()
    assert ChannelMember.objects.filter(channel=lenses, user=bob).exists()
    assert bob_arn in messaging.bans and bob_arn in lenses_remote.members
    assert carol_arn in lenses_remote.bans

    out = run("chime_sync")
    assert out.strip().endswith("3 drift(s) repaired.")
    ban = Ban.objects.get(user=bob, community=community)
    assert ban.created_by is None and ban.lifted_at is None
    assert ban.reason == "Channel ban made in Chime on #general by Alice Adams"
    assert AuditEntry.objects.filter(action=AuditEntry.Action.BAN, actor=None, target=bob).exists()
    assert not ChannelMember.objects.filter(user=bob).exists()
    for channel in Channel.objects.filter(community=community):
        remote = chime.channels[cfg.channel_arn(channel.pk)]
        assert bob_arn in remote.bans and bob_arn not in remote.members
    assert carol_arn not in lenses_remote.bans and carol_arn in lenses_remote.members
    assert "in sync" in run("chime_sync")
