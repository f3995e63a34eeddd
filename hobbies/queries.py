"""Reads whose SQL is built once.

Django builds a query's SQL again on every call. For the short reads every send makes that
costs more CPU than running them: on the embedded default, 300 sends spent 2.0 s compiling
their `SELECT`s and 0.18 s executing every statement (docs/performance.md). `Compiled` builds a
queryset once per database with stand-in values, keeps its SQL and what turns its rows into
model instances, and runs that SQL again with the real values in their places;
`CompiledUpdate` does the same for an `update()`, and `run_together` sends several of them in
one round trip where the database allows.

Only for querysets whose shape never depends on the values (the same filters, joins and
annotations whatever they are): the stand-ins must each appear among the compiled parameters,
and nothing else may (checked when the plan is made).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

import psycopg
from django.db import connections, transaction
from django.db.models import Field, Model, QuerySet, UUIDField
from django.db.models.query import get_related_populators  # type: ignore[attr-defined]
from django.db.models.sql import InsertQuery, UpdateQuery

from hobbies import loopdb

M = TypeVar("M", bound=Model)
B = TypeVar("B")  # what a build returns
P = TypeVar("P")  # a compiled plan

# One stand-in per argument position: in range for any integer field (an out-of-range value
# would compile to an empty query), and distinct from every constant the queries hold.
_INT_STAND_INS = (1_987_654_301, 1_987_654_302, 1_987_654_303, 1_987_654_304)
_UUID_STAND_INS = tuple(uuid.UUID(int=(0xC0FFEE << 64) + n) for n in range(4))


Kind: TypeAlias = "type[int] | Field[Any, Any]"
Statement: TypeAlias = "tuple[str, list[Any]]"  # SQL and its parameters


def _stand_in(kind: Kind, position: int) -> Any:
    if kind is int:
        return _INT_STAND_INS[position]
    if isinstance(kind, UUIDField):
        return _UUID_STAND_INS[position]
    return f"stand-in {position} {_UUID_STAND_INS[position]}"


def _prepare(kind: Kind, value: Any, connection: Any) -> Any:
    if isinstance(kind, Field):
        return kind.get_db_prep_value(value, connection, prepared=False)
    return int(value)


def _slots(params: Any, stand_ins: list[Any]) -> tuple[int | None, ...]:
    """Which argument goes in each parameter's place (None: a constant of the query)."""
    slots = tuple(stand_ins.index(p) if p in stand_ins else None for p in params)
    missing = set(range(len(stand_ins))) - {s for s in slots if s is not None}
    if missing:
        raise ValueError(f"argument(s) {sorted(missing)} do not reach the compiled query")
    return slots


@dataclass(frozen=True)
class _Plan:
    query: Any
    sql: str
    params: tuple[Any, ...]
    slots: tuple[int | None, ...]  # per parameter: which argument goes there (None: a constant)
    select: Any
    klass_info: Any
    annotation_col_map: Any
    col_count: int
    has_extra_select: bool
    init_list: tuple[str, ...]
    fields_start: int
    fields_end: int
    populators: Any


class _CompiledOnce(Generic[B, P]):
    """What both kinds share: the build, each argument's kind, one plan per database (made under
    a lock the first time), and the parameters of a call."""

    def __init__(self, build: Callable[..., B], *kinds: Kind):
        self.build = build
        self.kinds = kinds
        self._plans: dict[str, P] = {}
        self._alias = ""  # the database the build reads from, known from the first build
        self._lock = threading.Lock()

    def _plan(self) -> P:
        plan = self._plans.get(self._alias) if self._alias else None
        if plan is not None:
            return plan
        with self._lock:
            sample = self.build(*[_stand_in(kind, i) for i, kind in enumerate(self.kinds)])
            alias = self._database(sample)
            self._alias = alias
            plan = self._plans.get(alias)
            if plan is None:
                connection = connections[alias]
                stand_ins = [
                    _prepare(kind, _stand_in(kind, i), connection)
                    for i, kind in enumerate(self.kinds)
                ]
                plan = self._plans[alias] = self._make(sample, stand_ins)
        return plan

    def compiled(self) -> bool:
        """Whether the plan is made (the first call makes it, which needs a database
        connection of Django's: code on the event loop runs only what is compiled already)."""
        return bool(self._alias) and self._alias in self._plans

    def _params(self, values: tuple[Any, ...], constants: Any, slots: Any) -> list[Any]:
        if len(values) != len(self.kinds):
            raise TypeError(f"expected {len(self.kinds)} values, got {len(values)}")
        connection = connections[self._alias]
        prepared = [
            _prepare(kind, value, connection)
            for kind, value in zip(self.kinds, values, strict=True)
        ]
        return [constants[i] if slot is None else prepared[slot] for i, slot in enumerate(slots)]

    def _database(self, sample: B) -> str:
        raise NotImplementedError

    def _make(self, sample: B, stand_ins: list[Any]) -> P:
        raise NotImplementedError


class Compiled(_CompiledOnce[QuerySet[M], _Plan]):
    """`build(*values)` compiled once per database; `first(*values)` runs it.

    `kinds` gives each argument's kind: `int` (ids) or a model field whose database form the
    value takes (for example a `UUIDField`, which SQLite stores as text).
    """

    def first(self, *values: Any) -> M | None:
        """The first row as a model instance (with its related objects and annotations), or
        None."""
        sql, params = self._statement(values)
        connection = connections[self._alias]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return self._instance(connection, cursor.fetchone())

    def _statement(self, values: tuple[Any, ...]) -> tuple[str, list[Any]]:
        plan = self._plan()
        return plan.sql, self._params(values, plan.params, plan.slots)

    def _instance(self, connection: Any, fetched: Any) -> M | None:
        if fetched is None:
            return None
        plan = self._plan()
        row = list(fetched)
        for position, converters, expression in self._converters(connection, plan):
            value = row[position]
            for convert in converters:
                value = convert(value, expression, connection)
            row[position] = value
        model = plan.klass_info["model"]
        obj = model.from_db(
            connection.alias, plan.init_list, row[plan.fields_start : plan.fields_end]
        )
        for populator in plan.populators:
            populator.populate(row, obj)
        for name, position in (plan.annotation_col_map or {}).items():
            setattr(obj, name, row[position])
        return obj  # type: ignore[no-any-return]

    def _converters(self, connection: Any, plan: _Plan) -> list[tuple[int, list[Any], Any]]:
        """What turns each column's database value into Python (a datetime stored as text on
        SQLite, say), as `results_iter` would apply it; worked out once per connection, since
        a backend's converters may be bound to it."""
        kept = connection.__dict__.setdefault("_compiled_converters", {})
        entry = kept.get(id(plan))
        if entry is None or entry[0] is not plan:  # (an id may be reused once a plan is gone)
            compiler = plan.query.get_compiler(connection=connection)
            found = compiler.get_converters([column[0] for column in plan.select[: plan.col_count]])
            entry = kept[id(plan)] = (
                plan,
                [(position, funcs, expression) for position, (funcs, expression) in found.items()],
            )
        return entry[1]  # type: ignore[no-any-return]

    def _database(self, sample: QuerySet[M]) -> str:
        return sample.db

    def _make(self, sample: QuerySet[M], stand_ins: list[Any]) -> _Plan:
        queryset = sample[:1]
        compiler = queryset.query.get_compiler(using=queryset.db)
        # Django compiles a `select_for_update()` only inside a transaction (where it runs); the
        # atomic block sends nothing, as nothing runs in it.
        locks = queryset.query.select_for_update
        with transaction.atomic(using=queryset.db, savepoint=False) if locks else nullcontext():
            sql, params = compiler.as_sql()
        select_fields = compiler.klass_info["select_fields"]
        start, end = select_fields[0], select_fields[-1] + 1
        return _Plan(
            query=queryset.query,
            sql=sql,
            params=tuple(params),
            slots=_slots(params, stand_ins),
            select=compiler.select,
            klass_info=compiler.klass_info,
            annotation_col_map=compiler.annotation_col_map,
            col_count=compiler.col_count,
            has_extra_select=compiler.has_extra_select,
            init_list=tuple(f[0].target.attname for f in compiler.select[start:end]),
            fields_start=start,
            fields_end=end,
            populators=get_related_populators(compiler.klass_info, compiler.select, queryset.db),
        )


UpdatePlan = tuple[str, tuple[Any, ...], tuple[int | None, ...]]  # SQL, constants, slots


class CompiledUpdate(_CompiledOnce[tuple[QuerySet[Any], dict[str, Any]], UpdatePlan]):
    """`build(*values)` returns a queryset and the changes to make to its rows (as for
    `QuerySet.update`), compiled once per database; `run(*values)` makes them and returns how
    many rows changed. Like `update()`, it sends no signals."""

    def run(self, *values: Any) -> int:
        sql, constants, slots = self._plan()
        params = self._params(values, constants, slots)
        with connections[self._alias].cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.rowcount)

    def _database(self, sample: tuple[QuerySet[Any], dict[str, Any]]) -> str:
        return sample[0].db

    def _make(
        self, sample: tuple[QuerySet[Any], dict[str, Any]], stand_ins: list[Any]
    ) -> UpdatePlan:
        queryset, changes = sample
        query: Any = queryset.query.chain(UpdateQuery)
        query.add_update_values(changes)
        query.annotations = {}
        compiler = query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        if compiler.query.related_updates or not sql:
            raise ValueError("only an update of one table's rows can be compiled")
        return sql, tuple(params), _slots(params, stand_ins)


def _one_string(connection: Any) -> bool:
    """Whether several statements may go to this database as one string: PostgreSQL with
    client-side binding (Django's default there) runs them in order, in one round trip."""
    options = connection.settings_dict.get("OPTIONS") or {}
    return connection.vendor == "postgresql" and not options.get("server_side_binding")


def _database_of(aliases: set[str]) -> Any:
    if len(aliases) != 1:
        raise ValueError("statements run together must be of one database")
    return connections[aliases.pop()]


def first_together(*reads: tuple[Compiled[Any], tuple[Any, ...]]) -> list[Any]:
    """Run compiled reads (each with its values) in one round trip on PostgreSQL, one after
    another elsewhere; the first row of each, as `Compiled.first` gives it."""
    statements = [read._statement(values) for read, values in reads]
    connection = _database_of({read._alias for read, _ in reads})
    found = []
    with connection.cursor() as cursor:
        if _one_string(connection):
            cursor.execute(
                "; ".join(sql for sql, _ in statements),
                [param for _, params in statements for param in params],
            )
            for n, (read, _) in enumerate(reads):
                if n:
                    cursor.nextset()
                found.append(read._instance(connection, cursor.fetchone()))
            return found
        for (read, _), (sql, params) in zip(reads, statements, strict=True):
            cursor.execute(sql, params)
            found.append(read._instance(connection, cursor.fetchone()))
    return found


def insert_statement(obj: Model, using: str, *, as_is: bool = False) -> Statement:
    """The `INSERT` that saving this new object (its primary key already given) sends, to run
    with others (`locked_write`); fields' `pre_save` applies, as in `save()` (a `created_at`
    is set on the object), or with `as_is` the object's values are taken as they are (the
    caller has set what `pre_save` would). Returns nothing back and sends no signals; once it
    has run, `mark_saved(obj, using)`.

    Django's compiler builds the SQL the first time for each model and database; later calls
    reuse it and prepare only the values, as the compiler does (`pre_save`, then
    `get_db_prep_save`), unless a value is an expression or a field places its own."""
    opts = obj._meta
    if obj.pk is None:
        raise ValueError("the object's primary key must be given")
    fields = list(opts.local_concrete_fields)
    sql = _INSERTS.get((type(obj), using))
    if sql is not None:
        if as_is:
            values = [getattr(obj, field.attname) for field in fields]
        else:
            values = [field.pre_save(obj, add=True) for field in fields]
        if not any(hasattr(value, "resolve_expression") for value in values):
            connection = connections[using]
            return sql, [
                field.get_db_prep_save(value, connection=connection)
                for field, value in zip(fields, values, strict=True)
            ]
    query = InsertQuery(type(obj))
    query.insert_values(fields, [obj], raw=as_is)
    statements = query.get_compiler(using=using).as_sql()
    if len(statements) != 1:
        raise ValueError("one object, one statement")
    sql, params = statements[0]
    plain = not any(getattr(field, "get_placeholder", None) for field in fields)
    if plain and sql.count("%s") == len(fields) == len(params):
        _INSERTS[type(obj), using] = sql
    return sql, list(params)


# Each model's INSERT of all its columns, by (model, database): built by Django's compiler once.
_INSERTS: dict[tuple[type[Model], str], str] = {}


def insert_compiled(model: type[Model], using: str) -> bool:
    """Whether `insert_statement` has built this model's INSERT for `using` (its first call
    needs a database connection of Django's)."""
    return (model, using) in _INSERTS


def mark_saved(obj: Model, using: str) -> None:
    obj._state.adding = False
    obj._state.db = using


def update_statement(update: CompiledUpdate, *values: Any) -> Statement:
    """A compiled update's statement with these values, to run with others (`locked_write`)."""
    sql, constants, slots = update._plan()
    return sql, update._params(values, constants, slots)


def run_together(*updates: tuple[CompiledUpdate, tuple[Any, ...]]) -> list[int]:
    """Run compiled updates (each with its values), in order, in one round trip on PostgreSQL
    with client-side binding (Django's default there: one string of statements); one after
    another elsewhere. Returns how many rows each changed."""
    plans = [update_statement(update, *values) for update, values in updates]
    connection = _database_of({update._alias for update, _ in updates})
    with connection.cursor() as cursor:
        if _one_string(connection):
            cursor.execute(
                "; ".join(sql for sql, _ in plans),
                [param for _, params in plans for param in params],
            )
            counts = [int(cursor.rowcount)]
            while cursor.nextset():
                counts.append(int(cursor.rowcount))
            return counts
        counts = []
        for sql, params in plans:
            cursor.execute(sql, params)
            counts.append(int(cursor.rowcount))
        return counts


R = TypeVar("R")


def locked_write_fits(alias: str) -> bool:
    """Whether `locked_write` can run on this database now: PostgreSQL with client-side binding,
    in autocommit (outside any `transaction.atomic` block)."""
    connection = connections[alias]
    return (
        _one_string(connection) and not connection.in_atomic_block and connection.get_autocommit()
    )


def locked_write(
    lock: Compiled[M],
    values: tuple[Any, ...],
    write: Callable[[M | None], tuple[list[Statement], R]],
) -> R:
    """A short transaction that holds a row lock over one round trip, not three.

    `BEGIN` goes with `lock` (a `select_for_update()` read) in one round trip; `write(row)`
    (the row locked, or None) returns the statements to make and a result; they go with
    `COMMIT` in the second round trip, and the result is returned once that has committed.
    If `write` or a statement fails, the transaction is rolled back and the error raised
    (a connection left in an unknown state is closed: the next query opens another).

    Only where `locked_write_fits(alias)`. It is its own transaction, outside Django's:
    `transaction.on_commit` does not wait for it, so `write` only builds statements and
    whatever must follow the commit is done by the caller after this returns.
    """
    sql, params = lock._statement(values)
    if not locked_write_fits(lock._alias):
        raise RuntimeError("locked_write needs PostgreSQL in autocommit, outside transactions")
    connection = connections[lock._alias]
    with connection.cursor() as cursor:
        try:
            cursor.execute("BEGIN; " + sql, params)
            cursor.nextset()
            statements, result = write(lock._instance(connection, cursor.fetchone()))
            cursor.execute(
                "; ".join([statement for statement, _ in statements] + ["COMMIT"]),
                [param for _, params in statements for param in params],
            )
        except BaseException:
            _roll_back(connection, cursor)
            raise
    return result


# --- The same, from the event loop (hobbies.loopdb) --------------------------------------------


@contextlib.asynccontextmanager
async def _sent(alias: str, sql: str, params: list[Any]) -> AsyncIterator[tuple[Any, Any]]:
    """A connection of the event loop with `sql` sent on it, and its cursor, for the block. A
    connection found lost (PostgreSQL restarted since it was last used) is replaced once:
    nothing ran on it."""
    for fresh in (False, True):
        async with loopdb.connection(alias, fresh=fresh) as conn:
            try:
                cursor = await conn.execute(sql, params)
            except psycopg.OperationalError:
                if fresh or not conn.closed:
                    raise
                continue
            yield conn, cursor
            return


async def first_together_async(*reads: tuple[Compiled[Any], tuple[Any, ...]]) -> list[Any]:
    """`first_together` on a connection of the event loop (`loopdb.usable` databases, and
    reads already `compiled()`)."""
    statements = [read._statement(values) for read, values in reads]
    connection = _database_of({read._alias for read, _ in reads})
    sql = "; ".join(sql for sql, _ in statements)
    params = [param for _, params in statements for param in params]
    async with _sent(connection.alias, sql, params) as (_, cursor):
        found = []
        for n, (read, _) in enumerate(reads):
            if n:
                cursor.nextset()
            found.append(read._instance(connection, await cursor.fetchone()))
        return found


async def locked_write_async(
    lock: Compiled[M],
    values: tuple[Any, ...],
    write: Callable[[M | None], tuple[list[Statement], R]],
) -> R:
    """`locked_write` on a connection of the event loop (`loopdb.usable` databases, with
    `lock` compiled and every statement `write` builds able to be built without a connection
    of Django's). A connection found lost before the transaction began is replaced once.
    If `write` or a statement fails, or the caller is cancelled, the transaction is rolled
    back (or the connection closed, which PostgreSQL rolls back). Once the `COMMIT` is sent the
    outcome is whatever PostgreSQL made of it: a caller that must act on a commit shields this
    from cancellation."""
    sql, params = lock._statement(values)
    connection = connections[lock._alias]
    async with _sent(lock._alias, "BEGIN; " + sql, params) as (conn, cursor):
        try:
            cursor.nextset()
            statements, result = write(lock._instance(connection, await cursor.fetchone()))
            await cursor.execute(
                "; ".join([statement for statement, _ in statements] + ["COMMIT"]),
                [param for _, params in statements for param in params],
            )
        except Exception:
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
            raise
        return result


def _roll_back(connection: Any, cursor: Any) -> None:
    try:
        cursor.execute("ROLLBACK")
    except Exception:
        connection.close()
