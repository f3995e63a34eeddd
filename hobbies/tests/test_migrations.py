"""A database made by the release before the apps were separated upgrades with `migrate` alone.

The database is taken back to that release's last migrations (`hobbies` 0002, `chat` 0004: the
community models then belonged to `hobbies`), filled as that release left it, with its content
types and the site moderation permission it had (`chat.moderate`), then migrated forward.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts.models import User
from chat.models import Channel
from communities import policy
from communities.models import Community, Membership, Tag

PREVIOUS_RELEASE = [
    ("hobbies", "0002_identity_signin"),
    ("chat", "0004_attachment"),
    ("communities", None),
]


def migrate_to(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state([t for t in targets if t[1] is not None]).apps


@pytest.mark.django_db(transaction=True)
def test_previous_release_database_upgrades_with_migrate_alone():
    old = migrate_to(PREVIOUS_RELEASE)
    OldUser = old.get_model("hobbies", "User")
    OldCommunity = old.get_model("hobbies", "Community")
    OldMembership = old.get_model("hobbies", "Membership")
    OldTag = old.get_model("hobbies", "Tag")
    OldChannel = old.get_model("chat", "Channel")
    ContentType = old.get_model("contenttypes", "ContentType")
    Permission = old.get_model("auth", "Permission")
    Group = old.get_model("auth", "Group")

    owner = OldUser.objects.create(username="olga")
    moderator = OldUser.objects.create(username="sam", is_staff=True)
    tag = OldTag.objects.create(name="film")
    club = OldCommunity.objects.create(name="Film Club", slug="film-club", invite_code="abc")
    club.tags.add(tag)
    OldMembership.objects.create(community=club, user=owner, role="owner")
    OldChannel.objects.create(community=club, name="general")
    # What that release's post_migrate had made: its content types and permissions.
    ContentType.objects.filter(app_label="communities").delete()
    community_type = ContentType.objects.create(app_label="hobbies", model="community")
    Permission.objects.create(
        content_type=community_type, codename="view_community", name="Can view community"
    )
    message_type, _ = ContentType.objects.get_or_create(app_label="chat", model="message")
    old_moderate = Permission.objects.create(
        content_type=message_type, codename="moderate", name="Can moderate every community"
    )
    group = Group.objects.create(name="Site moderators")
    group.permissions.add(old_moderate)
    moderator.groups.add(group)

    call_command("migrate", verbosity=0)

    community = Community.objects.get(slug="film-club")
    assert [t.name for t in community.tags.all()] == ["film"]
    assert Membership.objects.get(community=community).user.username == "olga"
    assert Channel.objects.get(community=community).name == "general"
    assert Tag.objects.count() == 1
    assert community._meta.db_table == "hobbies_community"
    # The moved models' content types (and their permissions) now belong to communities.
    community_type.refresh_from_db()
    assert community_type.app_label == "communities"
    # Site moderators keep moderating every community, through the moved permission.
    sam = User.objects.get(username="sam")
    assert policy.is_site_moderator(sam)
    assert policy.can_moderate(sam, community)
    assert not Permission.objects.filter(content_type__app_label="chat", codename="moderate")
