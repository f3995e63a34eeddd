"""Reads compiled once (`hobbies.queries.Compiled`) give what the ORM gives, value for value,
on whichever database the suite runs on."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from django.db import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.db.models import OuterRef, Subquery
from django.db.models.sql import InsertQuery
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from psycopg.pq import TransactionStatus

from accounts.models import User
from chat.models import Channel, Message
from chat.selectors import channel_for_member, channel_for_sender, member_channel_query
from chat.services import channel_create
from communities.services import membership_timeout
from conftest import say
from hobbies.errors import NotFound
from hobbies.queries import (
    Compiled,
    CompiledUpdate,
    Statement,
    first_together,
    insert_statement,
    locked_write,
    locked_write_fits,
    mark_saved,
    run_together,
    update_statement,
)

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

pytestmark = pytest.mark.django_db

# Two updates the tests below run together.
STORE_PAYLOAD = CompiledUpdate(
    lambda text, message_id: (Message.objects.filter(id=message_id), {"payload_json": text}),
    Message._meta.get_field("payload_json"),
    int,
)
CHANNEL_SEQ = CompiledUpdate(
    lambda seq, channel_id: (Channel.objects.filter(id=channel_id), {"last_seq": seq}), int, int
)


def test_a_compiled_read_gives_what_the_orm_gives(alice, bob, community, general):
    until = timezone.now() + timedelta(hours=1)
    membership_timeout(community=community, user=bob, by=alice, until=until)
    compiled = Compiled(member_channel_query, int, int)
    for _ in range(2):  # the plan, then its reuse
        got = compiled.first(bob.pk, general.id)
        want = member_channel_query(bob.pk, general.id).first()
        assert got is not None and want is not None
        fields = [f.attname for f in Channel._meta.concrete_fields]
        assert [getattr(got, f) for f in fields] == [getattr(want, f) for f in fields]
        assert got.community.blocked_words == want.community.blocked_words
        assert got.community.created_at == want.community.created_at
        # Annotations come back converted, as the ORM gives them (a datetime, not text).
        assert isinstance(got.viewer_timeout_until, datetime)  # type: ignore[attr-defined]
        assert (got.viewer_role, got.viewer_timeout_until) == (  # type: ignore[attr-defined]
            want.viewer_role,  # type: ignore[attr-defined]
            want.viewer_timeout_until,  # type: ignore[attr-defined]
        )


def test_each_call_reads_with_its_own_values(alice, bob, mallory, community, general):
    """One plan, many users: nobody gets a row the ORM would not give them."""
    private = channel_create(community=community, name="crew", by=alice, kind=Channel.Kind.PRIVATE)
    compiled = Compiled(member_channel_query, int, int)
    assert compiled.first(alice.pk, private.id) is not None
    assert compiled.first(bob.pk, private.id) is None  # not invited
    assert compiled.first(mallory.pk, general.id) is None  # not in the community
    assert compiled.first(bob.pk, general.id).id == general.id  # type: ignore[union-attr]
    with CaptureQueriesContext(connection) as queries:
        compiled.first(alice.pk, general.id)
    assert len(queries.captured_queries) == 1
    assert "crew" not in queries.captured_queries[0]["sql"]


def test_uuid_values_take_their_database_form(alice, general):
    sent = say(general, alice, "hello")

    def with_sent(user_id: int, client_id: uuid.UUID):  # type: ignore[no-untyped-def]
        found = Message.objects.filter(author=OuterRef("pk"), client_id=client_id)
        return User.objects.annotate(sent_id=Subquery(found.values("id")[:1])).filter(pk=user_id)

    compiled = Compiled(with_sent, int, Message._meta.get_field("client_id"))
    assert compiled.first(alice.pk, sent.client_id).sent_id == sent.id  # type: ignore[union-attr]
    assert compiled.first(alice.pk, uuid.uuid4()).sent_id is None  # type: ignore[union-attr]


def test_a_value_that_does_not_reach_the_query_is_refused(alice):
    compiled = Compiled(lambda user_id, ignored: User.objects.filter(pk=user_id), int, int)
    with pytest.raises(ValueError, match=r"argument\(s\) \[1\]"):
        compiled.first(alice.pk, 5)


def test_the_channel_fetch_still_refuses_outsiders(mallory, general):
    with pytest.raises(NotFound):
        channel_for_member(mallory, general.id)


def test_reads_run_together_give_each_its_own_first_row(alice, bob, mallory, community, general):
    until = timezone.now() + timedelta(hours=1)
    membership_timeout(community=community, user=bob, by=alice, until=until)
    sent = say(general, alice, "hello")
    channel = Compiled(member_channel_query, int, int)
    author = Compiled(
        lambda user_id, client_id: (
            User.objects.select_related("profile")
            .annotate(
                sent_id=Subquery(
                    Message.objects.filter(author=OuterRef("pk"), client_id=client_id).values("id")[
                        :1
                    ]
                )
            )
            .filter(pk=user_id)
        ),
        int,
        Message._meta.get_field("client_id"),
    )
    with CaptureQueriesContext(connection) as queries:
        got = first_together(
            (channel, (bob.pk, general.id)),
            (author, (alice.pk, sent.client_id)),
            (channel, (mallory.pk, general.id)),  # not in the community: no row
            (author, (bob.pk, uuid.uuid4())),
        )
    # One round trip on PostgreSQL; one statement each elsewhere.
    assert len(queries) == (1 if connection.vendor == "postgresql" else 4)
    bobs_view, alice_row, nothing, bob_row = got
    assert bobs_view.id == general.id and nothing is None
    assert bobs_view.viewer_timeout_until == until  # converted, as the ORM gives it
    assert bobs_view.community.slug == community.slug
    assert (alice_row.pk, alice_row.sent_id, alice_row.profile.user_id) == (
        alice.pk,
        sent.id,
        alice.pk,
    )
    assert (bob_row.pk, bob_row.sent_id) == (bob.pk, None)


def test_a_send_reads_its_channel_and_sender_as_the_separate_reads_do(alice, mallory, general):
    sent = say(general, alice, "hello")
    channel, sender = channel_for_sender(alice, general.id, sent.client_id)
    assert channel.id == general.id
    assert channel.viewer_standing == channel_for_member(alice, general.id).viewer_standing
    assert sender.author.pk == alice.pk and sender.sent == (sent.id, general.id)
    assert channel_for_sender(alice, general.id, uuid.uuid4())[1].sent is None
    with pytest.raises(NotFound):
        channel_for_sender(mallory, general.id, uuid.uuid4())


def test_a_compiled_update_changes_only_the_rows_its_values_select(alice, bob, general):
    first, second = say(general, alice, "one"), say(general, bob, "two")
    store = CompiledUpdate(
        lambda text, message_id, version: (
            Message.objects.filter(id=message_id, version=version),
            {"payload_json": text, "payload_version": version},
        ),
        Message._meta.get_field("payload_json"),
        int,
        int,
    )
    assert store.run('{"a": 1}', first.id, first.version) == 1
    # A version that moved on: nothing changes (the stored rendering would be stale).
    assert store.run('{"b": 2}', second.id, second.version + 1) == 0
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.payload_json, first.payload_version) == ('{"a": 1}', first.version)
    assert second.payload_json != '{"b": 2}'


def test_updates_run_together_in_order_with_each_count(alice, bob, general):
    first, second = say(general, alice, "one"), say(general, bob, "two")
    store = STORE_PAYLOAD
    head = CHANNEL_SEQ
    with CaptureQueriesContext(connection) as queries:
        counts = run_together(
            (store, ('{"n": 1}', first.id)),
            (store, ('{"n": 2}', first.id)),  # after the one before it: the last one stays
            (store, ('{"n": 3}', 0)),  # matches nothing
            (head, (7, general.id)),
        )
    assert counts == [1, 1, 0, 1]
    # One round trip on PostgreSQL; one statement each elsewhere.
    assert len(queries) == (1 if connection.vendor == "postgresql" else 4)
    first.refresh_from_db()
    second.refresh_from_db()
    general.refresh_from_db()
    assert (first.payload_json, general.last_seq) == ('{"n": 2}', 7)
    assert second.payload_json != '{"n": 3}'


def test_updates_run_together_fail_together_inside_a_transaction(alice, general):
    message = say(general, alice, "one")
    store = STORE_PAYLOAD
    clash = CompiledUpdate(  # the second message's position taken by the first's: refused
        lambda seq, message_id: (Message.objects.filter(id=message_id), {"seq": seq}), int, int
    )
    other = say(general, alice, "two")
    with pytest.raises(IntegrityError), transaction.atomic():
        run_together((store, ('{"lost": true}', message.id)), (clash, (message.seq, other.id)))
    message.refresh_from_db()
    assert message.payload_json != '{"lost": true}'


def locked_write_test(test: F) -> F:
    """`locked_write` runs on PostgreSQL outside any transaction, as a socket's send does."""
    test = pytest.mark.django_db(transaction=True)(test)
    return pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")(test)


LOCK_CHANNEL = Compiled(
    lambda channel_id: Channel.objects.select_for_update().filter(id=channel_id), int
)


def unsaved(channel: Channel, author: User, client_id: uuid.UUID | None = None) -> Message:
    """A new message with its id already taken, as `message_send` takes it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('chat_message', 'id'))")
        (taken,) = cursor.fetchone()
    return Message(
        id=taken,
        channel=channel,
        author=author,
        client_id=client_id or uuid.uuid4(),
        seq=channel.last_seq + 1,
        body="hi",
        body_html="<p>hi</p>",
    )


def elsewhere(read: Callable[[], T]) -> T:
    """`read()` on another connection (in another thread): what everyone else sees."""

    def run() -> T:
        try:
            return read()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def locked_elsewhere(channel_id: int) -> bool:
    """Whether another connection finds the channel's row locked."""

    def try_lock() -> bool:
        try:
            with transaction.atomic():
                list(Channel.objects.select_for_update(nowait=True).filter(id=channel_id))
        except OperationalError:
            return True
        return False

    return elsewhere(try_lock)


def terminate(pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


def idle() -> bool:
    """Whether this connection is outside any transaction on the server."""
    return connection.connection.info.transaction_status == TransactionStatus.IDLE


@locked_write_test
def test_a_locked_write_commits_in_two_round_trips_holding_the_lock_until_then(alice, general):
    """The lock and BEGIN go in one round trip, the statements `write` returns with COMMIT in
    the next; the insert is the row `save()` would write, and others see it once it returns."""
    seen_while_writing = []
    # Nothing to write: it commits nothing (and the lock's SQL is compiled, once).
    assert locked_write(LOCK_CHANNEL, (general.id,), lambda locked: ([], "done")) == "done"
    assert idle()
    message = unsaved(general, alice)

    def write(locked: Channel | None) -> tuple[list[Statement], Message]:
        assert locked is not None and locked.id == general.id
        seen_while_writing.append(locked_elsewhere(general.id))
        statements = [insert_statement(message, "default")]
        statements.append(update_statement(CHANNEL_SEQ, message.seq, general.id))
        return statements, message

    with CaptureQueriesContext(connection) as queries:
        assert locked_write(LOCK_CHANNEL, (general.id,), write) is message
    mark_saved(message, "default")
    assert [q["sql"].split()[0] for q in queries] == ["BEGIN;", "INSERT"]
    assert queries[1]["sql"].endswith("; COMMIT")
    assert seen_while_writing == [True]
    assert not locked_elsewhere(general.id) and idle()
    assert message.created_at is not None  # set by the field's pre_save, as save() sets it
    stored = elsewhere(lambda: Message.objects.get(id=message.id))
    fields = [f.attname for f in Message._meta.concrete_fields]
    assert [getattr(stored, f) for f in fields] == [getattr(message, f) for f in fields]
    assert not message._state.adding
    assert elsewhere(lambda: Channel.objects.get(id=general.id).last_seq) == message.seq


@locked_write_test
def test_a_locked_write_that_fails_writes_nothing_and_lets_go_of_the_lock(alice, general):
    sent = say(general, alice, "first")

    def clash(locked: Channel | None) -> tuple[list[Statement], None]:
        assert locked is not None
        again = unsaved(locked, alice, client_id=sent.client_id)  # the same client_id: refused
        return [
            update_statement(STORE_PAYLOAD, '{"lost": true}', sent.id),
            insert_statement(again, "default"),
        ], None

    with pytest.raises(IntegrityError):
        locked_write(LOCK_CHANNEL, (general.id,), clash)
    assert idle() and not locked_elsewhere(general.id)
    sent.refresh_from_db()
    assert sent.payload_json != '{"lost": true}'
    assert Message.objects.filter(channel=general).count() == 1

    def refuse(locked: Channel | None) -> tuple[list[Statement], None]:
        raise NotFound("No such channel.")

    with pytest.raises(NotFound):
        locked_write(LOCK_CHANNEL, (general.id,), refuse)
    assert idle() and not locked_elsewhere(general.id)


@locked_write_test
def test_a_locked_write_whose_connection_is_killed_writes_nothing_and_reconnects(alice, general):
    """The server ends the connection between the two round trips (a restart, a failover):
    the error reaches the caller, nothing is written, and the next query connects again."""
    before = Message.objects.count()

    def killed(locked: Channel | None) -> tuple[list[Statement], None]:
        assert locked is not None
        message = unsaved(locked, alice)
        pid = connection.connection.info.backend_pid
        elsewhere(lambda: terminate(pid))
        return [insert_statement(message, "default")], None

    with pytest.raises(DatabaseError):
        locked_write(LOCK_CHANNEL, (general.id,), killed)
    assert Message.objects.count() == before  # a new connection
    assert not locked_elsewhere(general.id)


@pytest.mark.django_db(transaction=True)
def test_a_locked_write_runs_only_on_postgresql_outside_transactions(general):
    """Inside a transaction its own BEGIN and COMMIT would end the caller's: refused."""
    assert locked_write_fits("default") == (connection.vendor == "postgresql")
    with transaction.atomic():
        assert not locked_write_fits("default")
        with pytest.raises(RuntimeError, match="outside transactions"):
            locked_write(LOCK_CHANNEL, (general.id,), lambda locked: ([], None))


def test_an_insert_needs_its_primary_key(alice, general):
    with pytest.raises(ValueError, match="primary key"):
        insert_statement(Message(channel=general, author=alice, seq=1), "default")


@pytest.mark.django_db
def test_an_insert_builds_its_sql_once_and_its_values_as_djangos_compiler_does(alice, general):
    def new(n: int) -> Message:
        return Message(
            id=900_000_000 + n,
            channel=general,
            author=alice,
            client_id=uuid.uuid4(),
            seq=n,
            body=f"hi {n}",
            body_html=f"<p>hi {n}</p>",
        )

    insert_statement(new(1), "default")  # (the SQL is built here, and kept)
    second = new(2)
    sql, params = insert_statement(second, "default")
    assert second.created_at is not None  # its field's pre_save ran
    # What Django's compiler makes of the object as it is now (raw: pre_save not run again).
    query = InsertQuery(Message)
    query.insert_values(list(Message._meta.local_concrete_fields), [second], raw=True)
    built = query.get_compiler(using="default").as_sql()
    assert [(sql, params)] == [(s, list(p)) for s, p in built]
