"""A year of community life, written with bulk_create (timestamps set afterwards with
bulk_update, which leaves `auto_now_add` alone), for the rollup and page tests."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.utils import timezone

from accounts.models import User
from chat.models import Channel, Message, Report
from chat.services import channel_create
from communities.models import AuditEntry, Community, Membership
from communities.services import community_create

A = AuditEntry.Action
ACTIONS = [A.MESSAGE_REMOVE, A.WARN, A.TIMEOUT, A.BAN, A.CHANNEL_CREATE, A.INVITE_CREATE]


@dataclass
class Year:
    now: dt.datetime
    communities: list[Community]
    channels: list[Channel]
    users: list[User]


def _stamp(objs: list, field: str, stamps: list[dt.datetime]) -> None:
    for obj, stamp in zip(objs, stamps, strict=True):
        setattr(obj, field, stamp)
    type(objs[0]).objects.bulk_update(objs, [field], batch_size=500)


def add_messages(
    year: Year, count: int, start: dt.datetime, end: dt.datetime, rng: random.Random
) -> list[Message]:
    """`count` messages between `start` and `end`, ids increasing with time, as sends make
    them; authors are members of the channel's community."""
    members: dict[int, list[int]] = {}
    for community_id, user_id in Membership.objects.values_list("community_id", "user_id"):
        members.setdefault(community_id, []).append(user_id)
    seqs = {c.id: Message.objects.filter(channel=c).count() for c in year.channels}
    span = (end - start).total_seconds()
    stamps = sorted(start + dt.timedelta(seconds=rng.random() * span) for _ in range(count))
    weights = [5, 3, 2, 1, 1, 4, 1][: len(year.channels)]
    objs = []
    for _ in stamps:
        channel = rng.choices(year.channels, weights=weights)[0]
        seqs[channel.id] += 1
        objs.append(
            Message(
                channel=channel,
                author_id=rng.choice(members[channel.community_id]),
                client_id=uuid.uuid4(),
                seq=seqs[channel.id],
                body="hello",
                body_html="<p>hello</p>",
            )
        )
    made = Message.objects.bulk_create(objs, batch_size=500)
    _stamp(made, "created_at", stamps)
    return made


@pytest.fixture
def make_year(make_user: Callable[..., User]) -> Callable[..., Year]:
    def make(messages: int = 3000, seed: int = 12) -> Year:
        rng = random.Random(seed)
        now = timezone.now().replace(microsecond=0)
        start = now - dt.timedelta(days=365)
        owner = make_user("owner", display_name="Olga Owner")
        hiking = community_create(name="Hiking", slug="hiking", by=owner)
        # A name a spreadsheet would run as a formula, for the CSV test.
        chess = community_create(name="=HYPERLINK(1)", slug="chess", by=owner)
        channels = [Channel.objects.get(community=hiking, name="general")]
        for name in ("trails", "gear", "photos", "trips"):
            channels.append(channel_create(community=hiking, name=name, by=owner))
        channels.append(Channel.objects.get(community=chess, name="general"))
        channels.append(channel_create(community=chess, name="openings", by=owner))
        users = User.objects.bulk_create([User(username=f"member{i:03d}") for i in range(40)])
        memberships, joined = [], []
        for i, user in enumerate(users):
            for community in (hiking, chess) if i % 3 == 0 else (hiking,):
                memberships.append(Membership(community=community, user=user))
                joined.append(start + dt.timedelta(days=rng.randrange(0, 360), hours=i % 24))
        _stamp(Membership.objects.bulk_create(memberships), "joined_at", joined)
        made = add_messages(
            Year(now, [hiking, chess], channels, users),
            messages,
            start,
            now - dt.timedelta(minutes=5),
            rng,
        )
        # Some removed or deleted later: they still count on the day they were sent.
        for message in rng.sample(made, min(40, len(made) // 5)):
            message.deleted_at = message.created_at + dt.timedelta(hours=1)
            message.removed = rng.random() < 0.5
        Message.objects.bulk_update(
            [m for m in made if m.deleted_at], ["deleted_at", "removed"], batch_size=500
        )
        reported = sorted(rng.sample(made, min(120, len(made) // 4)), key=lambda m: m.created_at)
        reports = Report.objects.bulk_create(
            [
                Report(
                    message=m,
                    reporter=users[(i * 7) % len(users)],
                    community_id=m.channel.community_id,
                    reason=Report.Reason.SPAM,
                )
                for i, m in enumerate(reported)
            ]
        )
        _stamp(reports, "created_at", [m.created_at + dt.timedelta(minutes=3) for m in reported])
        acted = sorted(rng.sample(made, min(150, len(made) // 3)), key=lambda m: m.created_at)
        entries = AuditEntry.objects.bulk_create(
            [
                AuditEntry(
                    community_id=m.channel.community_id,
                    actor=owner,
                    action=ACTIONS[i % len(ACTIONS)],
                    target_id=m.author_id,
                )
                for i, m in enumerate(acted)
            ]
        )
        _stamp(entries, "created_at", [m.created_at + dt.timedelta(minutes=4) for m in acted])
        return Year(now, [hiking, chess], channels, users)

    return make
