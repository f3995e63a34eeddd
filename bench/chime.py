"""Send latency with MESSAGING_BACKEND=chime beside local, and the Chime bridge's throughput.

Runs in one process against the fake Chime on loopback (chat/tests/fake_chime.py) with an added
delay per Chime request (default 30 ms, roughly a same-region round trip):

1. `message_send` latency, one sender after another: p50/p99 for local and for chime;
2. sends from several threads at once, each to its own channel, then all to one channel:
   messages/s for both backends (the Chime call is made inside the channel's row lock);
3. the bridge: messages injected into the fake as another Chime client, timed until all are
   stored in our database and broadcast: events/s.

    .venv/bin/python bench/chime.py [--sends 200] [--delay 0.03] [--threads 8] [--events 1000]
                                    [--database-url postgres://…/hobbies_chime_bench]

The database is a fresh SQLite file in a temp folder unless `--database-url` names a
PostgreSQL database (created if missing; its tables are made by migrate).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.03)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="bench-chime-")
    os.environ["HOBBIES_VAR_DIR"] = workdir
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{workdir}/bench.sqlite3"
    os.environ.pop("REDIS_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "hobbies.settings"
    sys.path.insert(0, str(ROOT))
    if args.database_url:
        import psycopg

        base, _, name = args.database_url.rpartition("/")
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings

    from accounts.services import user_create
    from chat.backends import configured_backend
    from chat.chime_bridge import Bridge
    from chat.models import Channel, Message
    from chat.services import channel_create, message_send
    from chat.tests import fake_chime as fake_module
    from communities.services import community_create, membership_join

    call_command("migrate", verbosity=0)
    tag = uuid.uuid4().hex[:6]
    users = [user_create(username=f"b{tag}{i}", password="x" * 12) for i in range(args.threads)]
    community = community_create(name=f"Bench {tag}", by=users[0])
    for user in users[1:]:
        membership_join(community=community, user=user)
    channels = [Channel.objects.get(community=community, name="general")] + [
        channel_create(community=community, name=f"c{i}", by=users[0])
        for i in range(1, args.threads)
    ]

    def sequential(label: str) -> None:
        times = []
        for _ in range(args.sends):
            start = time.perf_counter()
            message_send(channel=channels[0], author=users[0], body="hello", client_id=uuid.uuid4())
            times.append((time.perf_counter() - start) * 1000)
        print(
            f"{label:<28} send latency  p50 {pct(times, 50):7.1f} ms   p99 {pct(times, 99):7.1f} ms"
            f"   mean {statistics.mean(times):7.1f} ms   (n={len(times)})"
        )

    def parallel(label: str, same_channel: bool) -> None:
        per = max(1, args.sends // args.threads)
        barrier = threading.Barrier(args.threads)

        def worker(i: int) -> None:
            try:
                barrier.wait()
                for _ in range(per):
                    message_send(
                        channel=channels[0 if same_channel else i],
                        author=users[i],
                        body="hello",
                        client_id=uuid.uuid4(),
                    )
            finally:
                connection.close()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        where = "one channel" if same_channel else f"{args.threads} channels"
        rate = per * args.threads / elapsed
        print(f"{label:<28} {args.threads} threads, {where:<12} {rate:7.1f} msg/s")

    with override_settings(RATE_LIMITS_ENABLED=False):
        configured_backend.cache_clear()
        print(f"database: {connection.vendor}; Chime fake delay {args.delay * 1000:.0f} ms/request")
        sequential("local")
        parallel("local", same_channel=False)
        parallel("local", same_channel=True)

        fake = fake_module.FakeChime(delay=args.delay)
        os.environ["AWS_ACCESS_KEY_ID"] = fake_module.ACCESS_KEY
        os.environ["AWS_SECRET_ACCESS_KEY"] = fake_module.SECRET_KEY
        chime_settings = {
            "AWS_REGION": fake_module.REGION,
            "CHIME_IDENTITY_ENDPOINT_URL": fake.identity_url,
            "CHIME_MESSAGING_ENDPOINT_URL": fake.messaging_url,
            "CHIME_SESSION_SCHEME": "ws",
            "CHIME_APP_INSTANCE_ARN": "",
        }
        with override_settings(**chime_settings):
            out = io.StringIO()
            call_command("chime_setup", stdout=out)
            arn = out.getvalue().split("CHIME_APP_INSTANCE_ARN=")[1].split()[0]
        chime_settings["CHIME_APP_INSTANCE_ARN"] = arn
        with override_settings(**chime_settings, MESSAGING_BACKEND="chime"):
            configured_backend.cache_clear()
            call_command("chime_sync", stdout=io.StringIO())
            sequential(f"chime (+{args.delay * 1000:.0f} ms)")
            parallel(f"chime (+{args.delay * 1000:.0f} ms)", same_channel=False)
            parallel(f"chime (+{args.delay * 1000:.0f} ms)", same_channel=True)

            fake.delay = 0.0
            bridge = Bridge()
            runner = threading.Thread(target=bridge.run, daemon=True)
            runner.start()
            while not bridge.connected:
                time.sleep(0.01)
            time.sleep(0.5)
            sender = bridge.config.user_arn(users[1].pk)
            channel_arn = bridge.config.channel_arn(channels[1].pk)
            before = Message.objects.filter(channel=channels[1]).count()
            start = time.perf_counter()
            for i in range(args.events):
                fake.post_as(sender, channel_arn, f"event {i}")
            injected = time.perf_counter() - start
            while bridge.stats.stored < args.events:
                time.sleep(0.005)
            elapsed = time.perf_counter() - start
            stored = Message.objects.filter(channel=channels[1]).count() - before
            print(
                f"bridge: {args.events} messages from another Chime client stored and "
                f"broadcast in {elapsed:.2f} s = {args.events / elapsed:.0f} events/s "
                f"(injecting took {injected:.2f} s; stored {stored}; "
                f"last lag {bridge.stats.lag or 0:.3f} s)"
            )
            bridge.kill()
            runner.join(5)
        fake.stop()
        configured_backend.cache_clear()


if __name__ == "__main__":
    main()
