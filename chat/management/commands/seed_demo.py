"""Demo data: a few hobby communities with channels, and the users alice, bob and carol."""

import uuid
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User
from accounts.services import profile_update, user_create
from chat.models import Channel
from chat.services import channel_create, message_send
from communities.models import Community, Membership
from communities.services import community_create, membership_join

USERS = [
    ("alice", "Alice Adams", "Film photographer and weekend climber.", "photography, climbing"),
    ("bob", "Bob Brown", "Board games every Friday.", "board games, photography"),
    ("carol", "Carol Chen", "Darkroom nerd.", "photography, chess"),
]

COMMUNITIES: list[dict[str, Any]] = [
    {
        "name": "Photography",
        "slug": "photography",
        "description": "Cameras, film, darkrooms and the pictures we make with them.",
        "tags": ["photography", "film", "darkroom"],
        "owner": "alice",
        "members": ["bob", "carol"],
        "channels": [
            ("gear", "Lenses, bodies and bags", "open"),
            ("news", "Club news", "announcement"),
        ],
    },
    {
        "name": "Board Games",
        "slug": "board-games",
        "description": "Euro games, party games, and the Friday game night.",
        "tags": ["board-games", "tabletop"],
        "owner": "bob",
        "members": ["alice"],
        "channels": [("game-night", "Who brings what on Friday", "open")],
    },
    {
        "name": "Climbing",
        "slug": "climbing",
        "description": "Bouldering, sport and trad: beta, gear and trips.",
        "tags": ["climbing", "bouldering", "outdoors"],
        "owner": "alice",
        "members": [],
        "channels": [("beta", "Route beta and spray", "open")],
    },
    {
        "name": "Chess Club",
        "slug": "chess-club",
        "description": "A private club for our Tuesday chess evenings.",
        "tags": ["chess"],
        "owner": "carol",
        "members": [],
        "visibility": "private",
        "channels": [],
    },
]

WELCOME = [
    ("alice", "Welcome to **Photography**! Share what you shot this week."),
    ("bob", "Hi all, just got a 50mm *f*/1.8. Any tips, @alice?"),
    ("carol", "Stop down to f/4 for portraits and enjoy the bokeh."),
]


class Command(BaseCommand):
    help = "Create demo communities, channels and the users alice, bob and carol. Idempotent."

    def handle(self, *args: Any, **options: Any) -> None:
        password = settings.DEMO_PASSWORD
        with transaction.atomic():
            users = {
                name: self._user(name, display, bio, hobbies, password)
                for name, display, bio, hobbies in USERS
            }
            for spec in COMMUNITIES:
                self._community(spec, users)
            general = Channel.objects.get(community__slug="photography", name="general")
            if not general.messages.exists():
                for i, (author, body) in enumerate(WELCOME):
                    message_send(
                        channel=general,
                        author=users[author],
                        body=body,
                        client_id=uuid.UUID(f"00000000-0000-4000-8000-{i:012d}"),
                    )
        self.stdout.write(
            self.style.SUCCESS(
                "Demo data ready: users alice, bob and carol (password from DEMO_PASSWORD) "
                "in community 'photography', channel 'general'."
            )
        )

    def _user(self, username: str, display: str, bio: str, hobbies: str, password: str) -> User:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = user_create(username=username, password=password, display_name=display)
            profile_update(user=user, display_name=display, bio=bio, hobbies=hobbies)
        return user

    def _community(self, spec: dict[str, Any], users: dict[str, User]) -> None:
        owner = users[spec["owner"]]
        community = Community.objects.filter(slug=spec["slug"]).first()
        if community is None:
            community = community_create(
                name=spec["name"],
                slug=spec["slug"],
                description=spec["description"],
                tags=spec["tags"],
                visibility=spec.get("visibility", "public"),
                by=owner,
            )
        for name in spec["members"]:
            if not Membership.objects.filter(community=community, user=users[name]).exists():
                membership_join(community=community, user=users[name])
        for name, topic, kind in spec["channels"]:
            if not Channel.objects.filter(community=community, name=name).exists():
                channel_create(community=community, name=name, topic=topic, kind=kind, by=owner)
