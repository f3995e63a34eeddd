"""Create the fan-out benchmark's data in the app's database, through the app's services.

Run by `fanout.py` with the same environment as the server under test (a migrated SQLite file in
a temp folder). Makes `--users` users, the first of whom creates a public community (with its
`general` channel) and the rest join it; logs each one in by creating a database session
directly. Prints one JSON line: `{"channel": ID, "sessions": [session keys, publisher first]}`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, required=True)
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
    print(json.dumps({"channel": channel.id, "sessions": [login(user) for user in users]}))


if __name__ == "__main__":
    main()
