"""SqlStore: the `ports.Store` of triggers and occurrences on SQLAlchemy Core (async).

One code path serves SQLite and PostgreSQL; what differs by dialect is insert-if-absent
(`_insert_if_absent`), the lock that serialises YAML reconciliation (`_serialise`), and how
an occurrence page names its trigger so each planner reads the right index
(`_occurrence_page`). Writes run in one transaction each, on the writer engine (SQLite
takes its write lock at BEGIN, see engine.py); the occurrence writes of concurrent records
share one (group_commit.py), run whole in the writer thread for a SQLite file
(thread_writer.py). Library errors become `errors.StoreError`
here, at the boundary, with `retriable` set when trying again may help; messages name the
operation and the driver's reason, never SQL text or the URL.

Several replicas share one PostgreSQL database, so every rule that must hold across them is
the database's: one occurrence per (trigger, event) is a unique constraint; an outcome is
written once (only a `pending` row is finished); reconciliations run one at a time; and every
trigger change bumps the `triggers` revision in its own transaction, which replicas poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Insert,
    RowMapping,
    Select,
    Table,
    Update,
    bindparam,
    delete,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from trigger_daemon.adapters.store.engine import writer
from trigger_daemon.adapters.store.group_commit import GroupCommit
from trigger_daemon.adapters.store.rows import (
    definition_values,
    occurrence_from_row,
    outcome_values,
    pending_values,
    trigger_from_row,
    trigger_values,
)
from trigger_daemon.adapters.store.schema import (
    TRIGGERS_REVISION,
    occurrences,
    store_revisions,
    triggers,
)
from trigger_daemon.adapters.store.thread_writer import ThreadWriter
from trigger_daemon.core.occurrences import NewOccurrence, Occurrence, OccurrenceStatus, Outcome
from trigger_daemon.core.triggers import Trigger, TriggerSource
from trigger_daemon.errors import ConflictError, NotFoundError, StoreError
from trigger_daemon.ports import ReconcileResult, Store

Written = TypeVar("Written")

# What a record asks the store to write: an occurrence to begin, or an outcome to record.
OccurrenceWrite = NewOccurrence | tuple[Occurrence, Outcome]

# Bound parameters per SELECT … IN stay far below every backend's limit.
_PAIRS_PER_QUERY = 400

# Names the PostgreSQL advisory lock that makes YAML reconciliations take turns (any constant
# shared by every replica; the migrations use another).
_POSTGRES_RECONCILE_LOCK = 0x7472_6967_7961_6D6C  # "trigyaml"


class SqlStore:
    """Triggers and occurrences in a SQL database; build one with `open_store(url)`."""

    def __init__(self, engine: AsyncEngine, thread_writer: ThreadWriter | None = None) -> None:
        """`thread_writer`, for a SQLite file, runs the occurrence writes."""
        self._engine = engine
        self._writer = writer(engine)
        self._thread_writer = thread_writer
        # SQLite has one writer at a time. Queueing the async engine's writers here, in the
        # event loop, keeps them off SQLite's busy handler, which sleeps in steps of up to
        # 100 ms. (Occurrence writes queue in the writer thread instead: a trigger write that
        # meets one of them waits on the busy handler.)
        self._write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        # Concurrent records share transactions (see group_commit.py): the occurrences some
        # begin and the outcomes others record go in one.
        self._writes = GroupCommit(self._write_many)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def ping(self) -> None:
        async with self._reading("ping") as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self._writes.close()
        if self._thread_writer is not None:
            await self._thread_writer.close()
        await self._engine.dispose()

    # Triggers

    async def list_triggers(self, *, name: str | None = None) -> list[Trigger]:
        query = select(triggers).order_by(triggers.c.created_at, triggers.c.id)
        if name:
            query = query.where(triggers.c.name.ilike(f"%{_escape_like(name)}%", escape="\\"))
        async with self._reading("list triggers") as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [trigger_from_row(row) for row in rows]

    async def get_trigger(self, trigger_id: str) -> Trigger:
        query = select(triggers).where(triggers.c.id == trigger_id)
        async with self._reading("read trigger") as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise NotFoundError(f"trigger {trigger_id} not found")
        return trigger_from_row(row)

    async def create_trigger(self, trigger: Trigger) -> None:
        async with self._writing("create trigger") as conn:
            insert = _insert_if_absent(conn, triggers).values(trigger_values(trigger))
            inserted = (await conn.execute(insert)).rowcount
            if inserted:
                await _bump_revision(conn, TRIGGERS_REVISION)
        if not inserted:
            raise ConflictError(f"trigger {trigger.id} already exists")

    async def delete_trigger(self, trigger_id: str) -> None:
        async with self._writing("delete trigger") as conn:
            deleted = await conn.execute(delete(triggers).where(triggers.c.id == trigger_id))
            if deleted.rowcount:
                await _bump_revision(conn, TRIGGERS_REVISION)
        if not deleted.rowcount:
            raise NotFoundError(f"trigger {trigger_id} not found")

    async def replace_yaml_triggers(self, triggers_: Sequence[Trigger]) -> ReconcileResult:
        wanted = _unique_by_id(triggers_)
        async with self._writing("reconcile YAML triggers") as conn:
            # Replicas starting with the same file take turns: the first applies it, the
            # others then read it back as unchanged.
            await _serialise(conn, _POSTGRES_RECONCILE_LOCK)
            plan = _plan_reconcile(await _stored_yaml_triggers(conn), wanted)
            await _apply_reconcile(conn, plan)
            if plan.upsert or plan.removed:
                await _bump_revision(conn, TRIGGERS_REVISION)
        return plan.result

    async def triggers_revision(self) -> int:
        query = select(store_revisions.c.value).where(store_revisions.c.name == TRIGGERS_REVISION)
        async with self._reading("read triggers revision") as conn:
            value = (await conn.execute(query)).scalar_one_or_none()
        return int(value or 0)

    # Occurrences

    async def begin_occurrences(self, new: Sequence[NewOccurrence]) -> list[Occurrence]:
        if not new:
            return []
        # Never None: an occurrence to begin is inserted, or found when it exists already.
        return cast(list[Occurrence], await self._writes.submit(new))

    async def finish_occurrence(self, occurrence: Occurrence, outcome: Outcome) -> Occurrence:
        (finished,) = await self._writes.submit([(occurrence, outcome)])
        if finished is None:
            raise NotFoundError(f"occurrence {occurrence.id} not found")
        return finished

    async def _write_many(self, writes: list[OccurrenceWrite]) -> list[Occurrence | None]:
        """The occurrences to begin and the outcomes to record of one group commit, in one
        transaction: the stored rows (None for an outcome of an unknown id), in input order."""
        new = [write for write in writes if isinstance(write, NewOccurrence)]
        outcomes = [write for write in writes if not isinstance(write, NewOccurrence)]
        # Each pair and each id once, in key order: two writers then lock rows in the same
        # order, which PostgreSQL needs to avoid deadlocks between overlapping batches. (Two
        # replicas handling the same records during a rebalance may still deadlock, an insert
        # against an update: PostgreSQL then aborts one, a retriable error, and it is retried.)
        by_pair = {(n.trigger_id, n.event_id): n for n in new}
        now = datetime.now(UTC)
        pending = [pending_values(by_pair[pair], now) for pair in sorted(by_pair)]
        # Only a pending row changes: the first outcome written stays, whoever else finishes
        # it (within this batch too: the first submitted for an id).
        first: dict[str, tuple[Occurrence, Outcome]] = {}
        for occurrence, outcome in outcomes:
            first.setdefault(occurrence.id, (occurrence, outcome))

        def record(
            conn: Connection,
        ) -> tuple[dict[tuple[str, str], Occurrence], dict[str, Occurrence]]:
            return _record_pending(conn, pending), _record_outcomes(conn, first)

        operation = " and ".join(
            name for name, some in (("record occurrences", new), ("record outcomes", first)) if some
        )
        begun, finished = await self._write(operation, record)
        return [
            begun[(write.trigger_id, write.event_id)]
            if isinstance(write, NewOccurrence)
            else finished.get(write[0].id)
            for write in writes
        ]

    async def reopen_occurrence(self, occurrence_id: str) -> Occurrence:
        # Only a failed row: of two re-drives at once, one reopens it and the other is refused.
        change = (
            update(occurrences)
            .where(
                occurrences.c.id == occurrence_id,
                occurrences.c.status == str(OccurrenceStatus.FAILED),
            )
            .values(status=str(OccurrenceStatus.PENDING), updated_at=datetime.now(UTC))
        )
        async with self._writing("reopen occurrence") as conn:
            row = await _execute_returning_row(conn, change)
            current = row if row is not None else await _occurrence_row(conn, occurrence_id)
        if current is None:
            raise NotFoundError(f"occurrence {occurrence_id} not found")
        if row is None:
            raise ConflictError(
                f"occurrence {occurrence_id} is {current['status']}; "
                "only failed occurrences can be retried"
            )
        return occurrence_from_row(row)

    async def get_occurrence(self, occurrence_id: str) -> Occurrence:
        async with self._reading("read occurrence") as conn:
            row = await _occurrence_row(conn, occurrence_id)
        if row is None:
            raise NotFoundError(f"occurrence {occurrence_id} not found")
        return occurrence_from_row(row)

    async def list_occurrences(
        self,
        trigger_id: str,
        *,
        limit: int,
        before_seq: int | None = None,
        after_seq: int | None = None,
    ) -> list[Occurrence]:
        async with self._reading("list occurrences") as conn:
            query = _occurrence_page(conn.dialect.name, trigger_id, limit, before_seq, after_seq)
            rows = (await conn.execute(query)).mappings().all()
        page = [occurrence_from_row(row) for row in rows]
        # Paging towards newer rows reads upwards from the cursor; the answer is newest first.
        return page[::-1] if after_seq is not None else page

    # Connections

    @asynccontextmanager
    async def _reading(self, operation: str) -> AsyncIterator[AsyncConnection]:
        with store_errors(operation):
            async with self._engine.connect() as conn:
                yield conn

    async def _write(self, operation: str, body: Callable[[Connection], Written]) -> Written:
        """`body` in one write transaction: in the writer thread for a SQLite file (see
        thread_writer.py), else through the async engine."""
        if self._thread_writer is not None:
            with store_errors(operation):
                return await self._thread_writer.run(body)
        async with self._writing(operation) as conn:
            return await conn.run_sync(body)

    @asynccontextmanager
    async def _writing(self, operation: str) -> AsyncIterator[AsyncConnection]:
        async with self._write_lock or contextlib.nullcontext():
            with store_errors(operation):
                async with self._writer.begin() as conn:
                    yield conn


@contextmanager
def store_errors(operation: str) -> Iterator[None]:
    """Turn the database library's errors into StoreError, saying whether a retry may help."""
    try:
        yield
    except (sa_exc.DBAPIError, sa_exc.TimeoutError, OSError) as exc:
        raise StoreError(
            f"store: {operation} failed: {_reason(exc)}", retriable=_is_retriable(exc)
        ) from exc


def _reason(exc: BaseException) -> str:
    # A DBAPIError's own text carries the SQL and its parameters; the driver's does not.
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    return f"{type(cause).__name__}: {cause}"


# PostgreSQL SQLSTATEs (or their two-character classes) that pass with time: a lost or
# refused connection, a server starting or shutting down, too many connections, a lock or
# serialisation conflict. https://www.postgresql.org/docs/current/errcodes-appendix.html
_TRANSIENT_SQLSTATES = ("08", "53", "57P01", "57P02", "57P03", "40001", "40P01", "55P03")


def _is_retriable(exc: BaseException) -> bool:
    """Locks, lost connections, a restarting server and exhausted pools pass; constraint or
    data errors do not."""
    if isinstance(exc, sa_exc.DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        return (
            exc.connection_invalidated
            or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
            or sqlstate.startswith(_TRANSIENT_SQLSTATES)
        )
    return True


def _insert_if_absent(conn: AsyncConnection | Connection, table: Table) -> Insert:
    """INSERT that skips rows whose key already exists, as the connected dialect spells it."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise StoreError(f"store: unsupported database {conn.dialect.name!r}", retriable=False)


async def _serialise(conn: AsyncConnection, key: int) -> None:
    """Hold a lock named `key` until this transaction ends. SQLite needs none: the writer's
    BEGIN IMMEDIATE already holds the database's only write lock."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def _bump_revision(conn: AsyncConnection, name: str) -> None:
    counter = store_revisions.c.value
    await conn.execute(
        update(store_revisions).where(store_revisions.c.name == name).values(value=counter + 1)
    )


def _escape_like(text_: str) -> str:
    return text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# YAML reconciliation


def _unique_by_id(triggers_: Sequence[Trigger]) -> dict[str, Trigger]:
    by_id = {trigger.id: trigger for trigger in triggers_}
    if len(by_id) != len(triggers_):
        raise ValueError("YAML triggers must have distinct ids (distinct names)")
    return by_id


@dataclass(frozen=True, slots=True)
class _ReconcilePlan:
    upsert: list[Trigger]  # added and changed: inserted if absent, then updated
    removed: list[str]
    result: ReconcileResult


def _plan_reconcile(stored: Mapping[str, Trigger], wanted: Mapping[str, Trigger]) -> _ReconcilePlan:
    added = [trigger for id_, trigger in wanted.items() if id_ not in stored]
    changed = [
        trigger
        for id_, trigger in wanted.items()
        if id_ in stored and definition_values(stored[id_]) != definition_values(trigger)
    ]
    removed = [id_ for id_ in stored if id_ not in wanted]
    unchanged = len(wanted) - len(added) - len(changed)
    result = ReconcileResult(len(added), len(changed), len(removed), unchanged)
    upsert = sorted(added + changed, key=lambda trigger: trigger.id)  # lock order, as above
    return _ReconcilePlan(upsert=upsert, removed=sorted(removed), result=result)


async def _stored_yaml_triggers(conn: AsyncConnection) -> dict[str, Trigger]:
    query = select(triggers).where(triggers.c.source == str(TriggerSource.YAML))
    rows = (await conn.execute(query)).mappings().all()
    return {row["id"]: trigger_from_row(row) for row in rows}


async def _apply_reconcile(conn: AsyncConnection, plan: _ReconcilePlan) -> None:
    """Insert-if-absent then update, so a concurrent reconcile of the same list cannot fail
    on a duplicate key; an update never touches created_at or an API trigger."""
    if plan.upsert:
        rows = [trigger_values(trigger, TriggerSource.YAML) for trigger in plan.upsert]
        await conn.execute(_insert_if_absent(conn, triggers), rows)
    for trigger in plan.upsert:
        await conn.execute(
            update(triggers)
            .where(triggers.c.id == trigger.id, triggers.c.source == str(TriggerSource.YAML))
            .values(**definition_values(trigger), updated_at=datetime.now(UTC))
        )
    if plan.removed:
        await conn.execute(
            delete(triggers).where(
                triggers.c.id.in_(plan.removed), triggers.c.source == str(TriggerSource.YAML)
            )
        )


# Occurrence queries


def _record_pending(
    conn: Connection, rows: Sequence[dict[str, Any]]
) -> dict[tuple[str, str], Occurrence]:
    """Insert the pending rows; every pair's stored occurrence, new or already there."""
    if not rows:
        return {}
    stored = _insert_pending(conn, rows)
    existing = [
        pair for row in rows if (pair := (row["trigger_id"], row["event_id"])) not in stored
    ]
    if existing:  # redelivered events: read what is there
        stored.update(_occurrences_by_pair(conn, existing))
    return stored


def _record_outcomes(
    conn: Connection, outcomes: Mapping[str, tuple[Occurrence, Outcome]]
) -> dict[str, Occurrence]:
    """Write each pending occurrence's outcome; the stored rows by id (unknown ids absent)."""
    if not outcomes:
        return {}
    ids = sorted(outcomes)
    params = [{"b_id": id_, **_outcome_params(outcomes[id_][1])} for id_ in ids]
    result = conn.execute(_FINISH_PENDING, params)
    if conn.dialect.supports_sane_multi_rowcount and result.rowcount == len(ids):
        # Every row was pending and now holds its outcome: no need to read them back (that
        # read decoded each event's JSON again, a fifth of the store's time).
        return {
            id_: occurrence.finished(outcome) for id_, (occurrence, outcome) in outcomes.items()
        }
    # Some were final already or unknown (or the driver cannot count): read them.
    return _occurrences_by_id(conn, ids)


def _insert_pending(
    conn: Connection, rows: Sequence[dict[str, Any]]
) -> dict[tuple[str, str], Occurrence]:
    """Insert the rows whose pair is new; return those it inserted (by pair), in one round
    trip where the database can return inserted rows (PostgreSQL, SQLite >= 3.35)."""
    insert = _insert_if_absent(conn, occurrences)
    if not conn.dialect.insert_returning:
        conn.execute(insert, rows)
        return {}
    # Only the ids and the store-assigned seq come back: the rest is what was just inserted,
    # and decoding each event's JSON again cost more than the insert.
    result = conn.execute(insert.returning(occurrences.c.id, occurrences.c.seq), rows)
    seqs: dict[str, int] = {id_: seq for id_, seq in result}
    return {
        (row["trigger_id"], row["event_id"]): occurrence_from_row({**row, "seq": seqs[row["id"]]})
        for row in rows
        if row["id"] in seqs
    }


async def _execute_returning_row(conn: AsyncConnection, change: Update) -> RowMapping | None:
    """Run an UPDATE of at most one occurrence; return the row it changed, or None when it
    changed none (or the database cannot say in the same statement)."""
    if not conn.dialect.update_returning:
        await conn.execute(change)
        return None
    return (await conn.execute(change.returning(*occurrences.c))).mappings().first()


async def _occurrence_row(conn: AsyncConnection, occurrence_id: str) -> RowMapping | None:
    query = select(occurrences).where(occurrences.c.id == occurrence_id)
    return (await conn.execute(query)).mappings().first()


# One UPDATE run for many occurrences (an executemany): each row's outcome comes in as
# b_-prefixed parameters, named apart from the columns they set.
_OUTCOME_COLUMNS = (
    "status",
    "attempts",
    "vars",
    "workflow_instance_id",
    "workflow_instance",
    "error",
    "updated_at",
)
_FINISH_PENDING = (
    update(occurrences)
    .where(
        occurrences.c.id == bindparam("b_id"),
        occurrences.c.status == str(OccurrenceStatus.PENDING),
    )
    .values(
        {name: bindparam(f"b_{name}", type_=occurrences.c[name].type) for name in _OUTCOME_COLUMNS}
    )
)


def _outcome_params(outcome: Outcome) -> dict[str, Any]:
    return {f"b_{name}": value for name, value in outcome_values(outcome).items()}


def _occurrences_by_id(conn: Connection, ids: Sequence[str]) -> dict[str, Occurrence]:
    found: dict[str, Occurrence] = {}
    for start in range(0, len(ids), _PAIRS_PER_QUERY):
        query = select(occurrences).where(
            occurrences.c.id.in_(ids[start : start + _PAIRS_PER_QUERY])
        )
        for row in conn.execute(query).mappings():
            found[row["id"]] = occurrence_from_row(row)
    return found


def _occurrences_by_pair(
    conn: Connection, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Occurrence]:
    found: dict[tuple[str, str], Occurrence] = {}
    for start in range(0, len(pairs), _PAIRS_PER_QUERY):
        chunk = pairs[start : start + _PAIRS_PER_QUERY]
        key = tuple_(occurrences.c.trigger_id, occurrences.c.event_id)
        rows = conn.execute(select(occurrences).where(key.in_(chunk))).mappings()
        for row in rows:
            found[(row["trigger_id"], row["event_id"])] = occurrence_from_row(row)
    return found


def _occurrence_page(
    dialect: str, trigger_id: str, limit: int, before_seq: int | None, after_seq: int | None
) -> Select[Any]:
    """One trigger's occurrences between the cursors, newest first (oldest first when paging
    towards newer rows), read from ix_occurrences_trigger_seq starting at the cursor.

    PostgreSQL, given `trigger_id = t ORDER BY seq`, may walk the primary key (seq) backwards
    from the newest row and filter on trigger_id: it assumes a trigger's rows are spread
    evenly, and for a trigger whose occurrences are all old it then reads most of the table
    (bench/explain_occurrences.py shows it). `trigger_id BETWEEN t AND t` selects the same
    rows but is not an equality to the planner, so ORDER BY (trigger_id, seq) stays an order
    that only the two-column index gives. SQLite always picks that index, and starts the scan
    at the cursor only with `=`.
    """
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    trigger, seq = occurrences.c.trigger_id, occurrences.c.seq
    of_trigger: ColumnElement[bool]
    if dialect == "postgresql":
        of_trigger = trigger.between(trigger_id, trigger_id)
    else:
        of_trigger = trigger == trigger_id
    query = select(occurrences).where(of_trigger).limit(limit)
    if before_seq is not None:
        query = query.where(seq < before_seq)
    if after_seq is not None:
        return query.where(seq > after_seq).order_by(trigger.asc(), seq.asc())
    return query.order_by(trigger.desc(), seq.desc())


if TYPE_CHECKING:

    def _implements_the_store_port(store: SqlStore) -> Store:
        """mypy checks here that SqlStore has every method of ports.Store, as declared."""
        return store
