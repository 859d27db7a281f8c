"""SqlStore: the `ports.Store` of triggers and occurrences on SQLAlchemy Core (async).

One code path serves SQLite and PostgreSQL; what differs by dialect is in dialects.py and,
for paging, queries.py. Writes run in one transaction each, on the writer engine (SQLite
takes its write lock at BEGIN, see engine.py); the occurrence writes of concurrent records
share one (group_commit.py, occurrence_writes.py), run whole in the writer thread for a
SQLite file (thread_writer.py). Every operation runs inside `store_errors` (errors.py), so
library errors leave the store as `errors.StoreError`.

Several replicas share one PostgreSQL database, so every rule that must hold across them is
the database's: one occurrence per (trigger, event) is a unique constraint; an outcome is
written once (only a `pending` row is finished); reconciliations run one at a time; and every
trigger change bumps the `triggers` revision in its own transaction, which replicas poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeVar, cast

from sqlalchemy import Update, delete, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from trigger_daemon.adapters.store import backfills, backtests, occurrence_counts, queries
from trigger_daemon.adapters.store.dialects import insert_if_absent, serialise
from trigger_daemon.adapters.store.engine import writer
from trigger_daemon.adapters.store.errors import store_errors
from trigger_daemon.adapters.store.group_commit import GroupCommit
from trigger_daemon.adapters.store.occurrence_writes import OccurrenceBatch, OccurrenceWrite
from trigger_daemon.adapters.store.reconcile import ReconcilePlan, plan_reconcile, unique_by_id
from trigger_daemon.adapters.store.rows import (
    definition_values,
    occurrence_from_row,
    trigger_values,
)
from trigger_daemon.adapters.store.schema import (
    TRIGGERS_REVISION,
    occurrences,
    store_revisions,
    triggers,
)
from trigger_daemon.adapters.store.thread_writer import ThreadWriter
from trigger_daemon.core.backfills import Backfill, Positions
from trigger_daemon.core.backtests import Backtest
from trigger_daemon.core.occurrences import (
    NewOccurrence,
    Occurrence,
    OccurrenceFilter,
    OccurrenceKey,
    OccurrenceStatus,
    Outcome,
)
from trigger_daemon.core.triggers import Trigger, TriggerSource
from trigger_daemon.errors import ConflictError, NotFoundError
from trigger_daemon.ports import (
    BackfillStore,
    BacktestStore,
    OccurrenceCounter,
    OccurrenceCounts,
    ReconcileResult,
    Store,
)

Written = TypeVar("Written")

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
        async with self._reading("list triggers") as conn:
            return await queries.list_triggers(conn, name)

    async def get_trigger(self, trigger_id: str) -> Trigger:
        async with self._reading("read trigger") as conn:
            trigger = await queries.trigger_by_id(conn, trigger_id)
        if trigger is None:
            raise NotFoundError(f"trigger {trigger_id} not found")
        return trigger

    async def create_trigger(self, trigger: Trigger) -> None:
        async with self._writing("create trigger") as conn:
            insert = insert_if_absent(conn, triggers).values(trigger_values(trigger))
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
        wanted = unique_by_id(triggers_)
        async with self._writing("reconcile YAML triggers") as conn:
            # Replicas starting with the same file take turns: the first applies it, the
            # others then read it back as unchanged.
            await serialise(conn, _POSTGRES_RECONCILE_LOCK)
            plan = plan_reconcile(await queries.yaml_triggers(conn), wanted)
            await _apply_reconcile(conn, plan)
            if plan.changes_triggers:
                await _bump_revision(conn, TRIGGERS_REVISION)
        return plan.result

    async def triggers_revision(self) -> int:
        async with self._reading("read triggers revision") as conn:
            return await queries.triggers_revision(conn)

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
        """One group commit's writes in one transaction (see occurrence_writes.py)."""
        batch = OccurrenceBatch(writes)
        return await self._write(batch.operation, batch.record)

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
            reopened = await _update_returning_occurrence(conn, change)
            current = (
                reopened
                if reopened is not None
                else await queries.occurrence_by_id(conn, occurrence_id)
            )
        if current is None:
            raise NotFoundError(f"occurrence {occurrence_id} not found")
        if reopened is None:
            raise ConflictError(
                f"occurrence {occurrence_id} is {current.status}; "
                "only failed occurrences can be retried"
            )
        return reopened

    async def get_occurrence(self, occurrence_id: str) -> Occurrence:
        async with self._reading("read occurrence") as conn:
            occurrence = await queries.occurrence_by_id(conn, occurrence_id)
        if occurrence is None:
            raise NotFoundError(f"occurrence {occurrence_id} not found")
        return occurrence

    async def list_occurrences(
        self,
        trigger_id: str,
        *,
        limit: int,
        before_seq: int | None = None,
        after_seq: int | None = None,
    ) -> list[Occurrence]:
        return await self.query_occurrences(
            OccurrenceFilter(trigger_id=trigger_id),
            limit=limit,
            before=None if before_seq is None else OccurrenceKey(before_seq),
            after=None if after_seq is None else OccurrenceKey(after_seq),
        )

    async def query_occurrences(
        self,
        selected: OccurrenceFilter,
        *,
        limit: int,
        before: OccurrenceKey | None = None,
        after: OccurrenceKey | None = None,
    ) -> list[Occurrence]:
        async with self._reading("query occurrences") as conn:
            return await queries.query_occurrences(
                conn, selected, limit=limit, before=before, after=after
            )

    async def count_occurrences(self, since: datetime) -> OccurrenceCounts:
        async with self._reading("count occurrences") as conn:
            return await occurrence_counts.counts_since(conn, since)

    # Backtests (backtests.py)

    async def save_backtest(self, backtest: Backtest) -> None:
        async with self._writing("save backtest") as conn:
            await backtests.save(conn, backtest)

    async def get_backtest(self, backtest_id: str) -> Backtest:
        async with self._reading("read backtest") as conn:
            found = await backtests.by_id(conn, backtest_id)
        if found is None:
            raise NotFoundError(f"backtest {backtest_id} not found")
        return found

    async def list_backtests(self, *, limit: int) -> list[Backtest]:
        async with self._reading("list backtests") as conn:
            return await backtests.newest(conn, limit)

    async def expire_backtests(self, finished_before: datetime) -> int:
        async with self._writing("expire backtests") as conn:
            return await backtests.expire(conn, finished_before)

    async def occurred_event_ids(self, trigger_id: str, event_ids: Sequence[str]) -> set[str]:
        async with self._reading("read occurred events") as conn:
            return await backtests.occurred_event_ids(conn, trigger_id, event_ids)

    # Backfills (backfills.py)

    async def create_backfill(self, backfill: Backfill, *, max_running: int) -> None:
        async with self._writing("create backfill") as conn:
            await backfills.create(conn, backfill, max_running)

    async def get_backfill(self, backfill_id: str) -> Backfill:
        async with self._reading("read backfill") as conn:
            found = await backfills.by_id(conn, backfill_id)
        if found is None:
            raise NotFoundError(f"backfill {backfill_id} not found")
        return found

    async def list_backfills(self, *, limit: int) -> list[Backfill]:
        async with self._reading("list backfills") as conn:
            return await backfills.newest(conn, limit)

    async def cancel_backfill(self, backfill_id: str, at: datetime) -> Backfill:
        async with self._writing("cancel backfill") as conn:
            found = await backfills.cancel(conn, backfill_id, at)
        if found is None:
            raise NotFoundError(f"backfill {backfill_id} not found")
        return found

    async def claim_backfill(
        self, owner: str, now: datetime, expires_at: datetime, skip: Sequence[str]
    ) -> tuple[Backfill, Positions] | None:
        async with self._reading("find backfills to claim") as conn:
            candidates = await backfills.claimable(conn, owner, now, skip)
        if not candidates:
            return None
        async with self._writing("claim backfill") as conn:
            return await backfills.claim(conn, owner, now, expires_at, candidates)

    async def renew_backfill_lease(
        self, backfill_id: str, owner: str, expires_at: datetime
    ) -> bool:
        async with self._writing("renew backfill lease") as conn:
            return await backfills.renew(conn, backfill_id, owner, expires_at)

    async def save_backfill_progress(
        self, backfill: Backfill, positions: Positions, owner: str, *, release: bool = False
    ) -> bool:
        async with self._writing("save backfill progress") as conn:
            return await backfills.save_progress(conn, backfill, positions, owner, release)

    async def finish_backfill(
        self, backfill: Backfill, positions: Positions, owner: str
    ) -> Backfill | None:
        async with self._writing("finish backfill") as conn:
            return await backfills.finish(conn, backfill, positions, owner)

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


async def _bump_revision(conn: AsyncConnection, name: str) -> None:
    counter = store_revisions.c.value
    await conn.execute(
        update(store_revisions).where(store_revisions.c.name == name).values(value=counter + 1)
    )


async def _apply_reconcile(conn: AsyncConnection, plan: ReconcilePlan) -> None:
    """Insert-if-absent then update, so a concurrent reconcile of the same list cannot fail
    on a duplicate key; an update never touches created_at or an API trigger."""
    if plan.upsert:
        rows = [trigger_values(trigger, TriggerSource.YAML) for trigger in plan.upsert]
        await conn.execute(insert_if_absent(conn, triggers), rows)
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


async def _update_returning_occurrence(conn: AsyncConnection, change: Update) -> Occurrence | None:
    """Run an UPDATE of at most one occurrence; return the row it changed, or None when it
    changed none (or the database cannot say in the same statement)."""
    if not conn.dialect.update_returning:
        await conn.execute(change)
        return None
    row = (await conn.execute(change.returning(*occurrences.c))).mappings().first()
    return None if row is None else occurrence_from_row(row)


if TYPE_CHECKING:

    def _implements_the_store_port(store: SqlStore) -> Store:
        """mypy checks here that SqlStore has every method of ports.Store, as declared."""
        return store

    def _implements_the_backtest_store_port(store: SqlStore) -> BacktestStore:
        return store

    def _implements_the_backfill_store_port(store: SqlStore) -> BackfillStore:
        return store

    def _implements_the_occurrence_counter_port(store: SqlStore) -> OccurrenceCounter:
        return store
