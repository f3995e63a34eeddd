"""Check that this deployment can serve: database, migrations, channel layer, cache, messaging
backend, attachment storage, OpenID Connect sign-in, settings.

Every failing check prints what went wrong and what to do about it, in this deployment's terms
(the address it tried, the variable to change). The integrations check themselves
(`chat.storage.check`, `accounts.oidc.check`) and say the fix with the `CheckFailed` they raise.
"""

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts import oidc
from chat import storage
from chat.backends import KNOWN as KNOWN_BACKENDS
from chat.backends import get_backend
from chat.backends.chime import ChimeBackend
from chat.chime_bridge import health, health_problem
from chat.hub import channel_layer
from hobbies.cache import cache
from hobbies.errors import CheckFailed


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], str]  # what was found; raises when the check fails
    fix: Callable[[], str]  # what to do when it fails (unless it raised `CheckFailed`)
    needs_database: bool = False


async def _layer_roundtrip() -> None:
    layer = channel_layer()
    name = await layer.new_channel("doctor.")
    await layer.send(name, {"type": "doctor.probe"})
    await asyncio.wait_for(layer.receive(name), timeout=5)


def _database() -> str:
    if connection.vendor == "postgresql" and connection.pool is not None:  # type: ignore[attr-defined]
        # Straight to the server first, not through the pool: a pool that cannot connect only
        # says that it waited; this says why (refused, no such database, a password refused).
        params = connection.get_connection_params()
        psycopg.connect(**params, connect_timeout=5).close()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return f"{connection.vendor} reachable"


def _migrations() -> str:
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        raise CommandError(f"{len(pending)} migration(s) not applied")
    return "all applied"


def _channel_layer() -> str:
    async_to_sync(_layer_roundtrip)()
    return type(channel_layer()).__name__


def _cache() -> str:
    key = f"doctor:{uuid.uuid4().hex}"
    cache.set(key, "ok", 10)
    if cache.get(key) != "ok":
        raise CommandError("the cache did not keep a value")
    cache.delete(key)
    return settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]


def _backend() -> str:
    backend = get_backend()
    if isinstance(backend, ChimeBackend):
        # Reachable, signed with working credentials, and the AppInstance and bridge user exist.
        if not backend.config.app_instance_arn:
            raise CommandError("CHIME_APP_INSTANCE_ARN is unset")
        api = backend.api
        api.call(
            api.identity, "describe_app_instance", AppInstanceArn=backend.config.app_instance_arn
        )
        api.call(
            api.identity,
            "describe_app_instance_user",
            AppInstanceUserArn=backend.config.bridge_user_arn,
        )
        return f"chime: {backend.config.app_instance_arn} reachable, bridge user exists"
    return backend.name


def _storage_fix() -> str:  # for a failure `storage.check` did not foresee
    return "check STORAGE_BACKEND and the settings of its section in docs/configuration.md"


def _oidc_fix() -> str:  # for a failure `oidc.check` did not foresee
    return "check the OIDC_* settings (docs/authentication.md)"


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _database_fix() -> str:
    db = settings.DATABASES["default"]
    if connection.vendor == "sqlite":
        return f"make sure {db['NAME']} can be written (HOBBIES_VAR_DIR), or set DATABASE_URL"
    where = f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 'default port'}/{db['NAME']}"
    return f"start {connection.display_name} at {where} and check its user, or fix DATABASE_URL"


def _migrations_fix() -> str:
    return "run `manage.py migrate` (or `manage.py setup`, which also collects static files)"


def _redis_fix(setting: str) -> Callable[[], str]:
    def fix() -> str:
        if settings.REDIS_URL:
            return f"start Redis at {_without_password(settings.REDIS_URL)}, or fix REDIS_URL"
        return f"check {setting} in the settings (REDIS_URL is unset)"

    return fix


def _backend_fix() -> str:
    if settings.MESSAGING_BACKEND == "chime":
        return (
            "check AWS credentials and AWS_REGION, the IAM permissions (docs/chime.md), and run "
            "`manage.py chime_setup` (it prints CHIME_APP_INSTANCE_ARN)"
        )
    return f"set MESSAGING_BACKEND to one of: {', '.join(KNOWN_BACKENDS)}"


def _bridge_fix(found: dict[str, Any] | None) -> str:
    if found is not None and not found.get("connected"):
        return (
            "see the bridge's log: it reconnects by itself after a retryable close, and stops "
            "after a refused one (credentials, IAM permissions, the bridge user); fix that, "
            "then restart `manage.py chime_bridge`"
        )
    return (
        "start `manage.py chime_bridge` (exactly one process, kept by your process manager) "
        "with the same REDIS_URL and CHANNEL_LAYER_PREFIX as the web processes, so its health "
        "and events reach them"
    )


CHECKS = [
    Check("database", _database, _database_fix),
    Check("migrations", _migrations, _migrations_fix, needs_database=True),
    Check("channel layer", _channel_layer, _redis_fix("CHANNEL_LAYERS")),
    Check("cache", _cache, _redis_fix("CACHES")),
    Check("messaging backend", _backend, _backend_fix),
    Check("storage", storage.check, _storage_fix),
    Check("OIDC sign-in", oidc.check, _oidc_fix),
]


class Command(BaseCommand):
    help = (
        "Check the database, migrations, channel layer, cache, messaging backend, attachment "
        "storage, OpenID Connect sign-in and production settings."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        failed: list[str] = []
        for check in CHECKS:
            if check.needs_database and "database" in failed:
                self.stdout.write(f"skip  {check.name}: needs the database")
                continue
            try:
                self.stdout.write(f"ok    {check.name}: {check.run()}")
            except Exception as exc:
                failed.append(check.name)
                problem = " ".join(str(exc).split())  # drivers' messages span several lines
                self.stdout.write(self.style.ERROR(f"FAIL  {check.name}: {problem}"))
                fix = exc.fix if isinstance(exc, CheckFailed) else check.fix()
                self.stdout.write(f"      fix: {fix}")
        for warning in self._warnings():
            self.stdout.write(self.style.WARNING(f"warn  {warning}"))
        if failed:
            raise CommandError(f"{len(failed)} check(s) failed: {', '.join(failed)}")
        self.stdout.write(self.style.SUCCESS("Ready to serve."))

    def _warnings(self) -> list[str]:
        warnings = []
        if settings.DEBUG:
            warnings.append("DJANGO_DEBUG is on: never in production")
        if not settings.SECURE_COOKIES:
            warnings.append("DJANGO_SECURE_COOKIES is off: turn it on behind HTTPS")
        if not settings.REDIS_URL:
            warnings.append("REDIS_URL is unset: live events reach only this one process")
        if connection.vendor == "sqlite":
            warnings.append("SQLite database: fine for one machine, use PostgreSQL in production")
        if settings.MESSAGING_BACKEND == "chime" and (problem := health_problem(health())):
            warnings.append(
                f"Chime bridge: {problem}; messages from other Chime clients wait\n"
                f"      fix: {_bridge_fix(health())}"
            )
        if not settings.RATE_LIMITS_ENABLED:
            warnings.append("RATE_LIMITS_ENABLED is off")
        return warnings
