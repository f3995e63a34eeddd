"""Create the fan-out benchmark's data in the app's database, through the app's services.

Run by `fanout.py` with the same environment as the server under test (a migrated SQLite file in
a temp folder). Makes `--users` users, the first of whom creates a public community (with its
`general` channel) and the rest join it; logs each one in by creating a database session
directly. With `--channels K` the owner also opens channels `room-0` … `room-K-1`; with
`--messages M` the owner posts M messages in `general`. Prints one JSON line:
`{"channel": ID, "rooms": [IDs], "sessions": [session keys, publisher first]}`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import uuid
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--channels", type=int, default=0)
    parser.add_argument("--messages", type=int, default=0)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hobbies.settings")
    django.setup()

    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.test.utils import override_settings

    from accounts.models import User
    from accounts.services import user_create
    from chat.models import Channel
    from chat.services import channel_create, message_send
    from communities.services import community_create, membership_join

    def login(user: User) -> str:
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        return str(session.session_key)

    password = secrets.token_urlsafe(16)
    # The default hasher takes ~0.3 s a user on purpose; these throwaway users need no such
    # protection. Sessions do not depend on the hasher (the session hash is an HMAC of the stored
    # password field), so the server logs them in as usual.
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        users = [
            user_create(username=f"bench-{index:04d}", password=password)
            for index in range(args.users)
        ]
    community = community_create(
        name="Fan-out bench",
        slug="fanout-bench",
        description="Made by bench/setup_app.py.",
        tags=["bench"],
        visibility="public",
        by=users[0],
    )
    for user in users[1:]:
        membership_join(community=community, user=user)
    channel = Channel.objects.get(community=community, name="general")
    rooms = [
        channel_create(community=community, name=f"room-{index}", by=users[0]).id
        for index in range(args.channels)
    ]
    for index in range(args.messages):
        message_send(
            channel=channel,
            author=users[0],
            body=f"history {index}: the **light** over the harbour at dusk",
            client_id=uuid.uuid4(),
            reply_to=None,
            attachments=[],
        )
    sessions = [login(user) for user in users]
    print(json.dumps({"channel": channel.id, "rooms": rooms, "sessions": sessions}))


if __name__ == "__main__":
    main()
