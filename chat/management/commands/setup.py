"""Prepare a deployment: apply migrations, create the moderators' groups and collect static
files. Safe to run on every deploy."""

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.services import admin_groups_ensure


class Command(BaseCommand):
    help = (
        "Apply database migrations, create the moderators' groups and collect static files "
        "(idempotent)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--demo", action="store_true", help="Also load the demo data.")

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=options["verbosity"])
        groups = admin_groups_ensure()
        self.stdout.write("Groups: " + ", ".join(g.name for g in groups) + ".")
        call_command("collectstatic", interactive=False, verbosity=0)
        self.stdout.write("Static files collected.")
        if options["demo"]:
            call_command("seed_demo")
        call_command("doctor")
