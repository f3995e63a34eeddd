"""Give a community's moderator (or owner) admin access, scoped to what they moderate."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import community_moderator_admin_set
from communities.models import Community
from communities.policy import moderated_community_ids


class Command(BaseCommand):
    help = (
        "Give USER admin access as a community moderator: staff status and the Community "
        "moderators group. In the admin they see and act on the communities they moderate or "
        "own, only. --revoke takes it back."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--revoke", action="store_true", help="Take admin access back.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user {options['username']!r}.")
        if options["revoke"]:
            community_moderator_admin_set(user=user, enabled=False)
            self.stdout.write(f"{user.username} no longer has community moderator admin access.")
            return
        ids = moderated_community_ids(user)
        communities = (
            Community.objects.all() if ids is None else Community.objects.filter(id__in=ids)
        )
        names = sorted(communities.values_list("name", flat=True))
        if not names:
            raise CommandError(
                f"{user.username} moderates no community: make them a moderator first."
            )
        community_moderator_admin_set(user=user, enabled=True)
        self.stdout.write(f"{user.username} has admin access for: {', '.join(names)}.")
