"""Check that this deployment can serve: database, migrations, channel layer, cache, settings."""

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from chat.backends import get_backend
from chat.hub import channel_layer


async def _layer_roundtrip() -> None:
    layer = channel_layer()
    name = await layer.new_channel("doctor.")
    await layer.send(name, {"type": "doctor.probe"})
    await asyncio.wait_for(layer.receive(name), timeout=5)


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return f"{connection.vendor} reachable"


def _migrations() -> str:
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        raise CommandError(f"{len(pending)} migration(s) not applied: run `manage.py migrate`")
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
    return get_backend().name


class Command(BaseCommand):
    help = "Check the database, migrations, channel layer, cache and production settings."

    def handle(self, *args: Any, **options: Any) -> None:
        checks: list[tuple[str, Callable[[], str]]] = [
            ("database", _database),
            ("migrations", _migrations),
            ("channel layer", _channel_layer),
            ("cache", _cache),
            ("messaging backend", _backend),
        ]
        failed = 0
        for name, check in checks:
            try:
                self.stdout.write(f"ok    {name}: {check()}")
            except Exception as exc:
                failed += 1
                self.stdout.write(self.style.ERROR(f"FAIL  {name}: {exc}"))
        for warning in self._warnings():
            self.stdout.write(self.style.WARNING(f"warn  {warning}"))
        if failed:
            raise CommandError(f"{failed} check(s) failed")
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
        if not settings.RATE_LIMITS_ENABLED:
            warnings.append("RATE_LIMITS_ENABLED is off")
        return warnings
