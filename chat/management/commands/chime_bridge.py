"""`manage.py chime_bridge`: the long-running worker that brings what other Chime clients do
into our channels (chat/chime_bridge.py). `--health` prints the running bridge's health and
exits 1 when it is not connected or has not reported for a minute."""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from chat.chime_bridge import Bridge, health, health_problem
from hobbies import metrics


class Command(BaseCommand):
    help = "Run the Chime messaging session bridge (MESSAGING_BACKEND=chime)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--health", action="store_true", help="Print health and exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["health"]:
            found = health()
            self.stdout.write(json.dumps(found, indent=2) if found else "no report")
            problem = health_problem(found)
            if problem:
                raise CommandError(problem)
            return
        if settings.MESSAGING_BACKEND != "chime" or not settings.CHIME_APP_INSTANCE_ARN:
            raise CommandError("Set MESSAGING_BACKEND=chime and CHIME_APP_INSTANCE_ARN first.")
        bridge = Bridge()
        if settings.METRICS_EMF:
            # BridgeConnected reaches CloudWatch at least once a minute (its alarm needs it).
            metrics.emf_start(
                namespace=settings.METRICS_NAMESPACE,
                environment=settings.HOBBIES_ENVIRONMENT,
                interval=min(settings.METRICS_EMF_INTERVAL, 60.0),
            )
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: bridge.stop.set())
        self.stdout.write(f"chime bridge: listening as {bridge.config.bridge_user_arn}")
        code = bridge.run()
        self.stdout.write(f"chime bridge: stopped ({bridge.stats})")
        if code:
            sys.exit(code)
