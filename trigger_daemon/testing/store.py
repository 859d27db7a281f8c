"""InMemoryStore: `ports.Store` in a few dicts, for tests that need a store but not a database.

It keeps the rules the SQL store keeps, and tests/integration/test_store.py runs the same
contract against both: one occurrence per (trigger, event), an outcome written once (only a
pending occurrence is finished), only a failed occurrence reopened, triggers listed oldest
first, occurrences paged newest first by a store-assigned `seq` (or by date, then seq, when
queried with a time window), and a revision that moves
with every trigger change. Nothing is shared between two instances, as two processes on two
databases would share nothing: replicas need the SQL store.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from trigger_daemon.core.backfills import (
    Backfill,
    BackfillStatus,
    Positions,
    TooManyBackfills,
)
from trigger_daemon.core.backtests import Backtest
from trigger_daemon.core.occurrences import (
    NewOccurrence,
    Occurrence,
    OccurrenceFilter,
    OccurrenceKey,
    OccurrenceStatus,
    Outcome,
)
from trigger_daemon.core.triggers import Trigger, TriggerDefinition, TriggerSource
from trigger_daemon.errors import ConflictError, NotFoundError
from trigger_daemon.ports import (
    BackfillStore,
    BacktestStore,
    OccurrenceCounter,
    OccurrenceCounts,
    ReconcileResult,
    Store,
)

# The fields of a user's definition: what makes a YAML trigger "changed" on reconcile.
_DEFINITION_FIELDS = set(TriggerDefinition.model_fields)


class InMemoryStore:
    def __init__(self) -> None:
        self.triggers: dict[str, Trigger] = {}
        self.occurrences: dict[str, Occurrence] = {}  # by id, in insertion (seq) order
        self._by_pair: dict[tuple[str, str], str] = {}  # (trigger id, event id) -> occurrence id
        self._revision = 0
        self._last_seq = 0
        self.backtests: dict[str, Backtest] = {}
        self.backfills: dict[str, _BackfillRow] = {}

    async def ping(self) -> None:
        pass

    async def close(self) -> None:
        pass

    # Triggers

    async def list_triggers(self, *, name: str | None = None) -> list[Trigger]:
        found = sorted(self.triggers.values(), key=lambda t: (t.created_at, t.id))
        if name:
            wanted = name.lower()
            found = [t for t in found if t.name is not None and wanted in t.name.lower()]
        return found

    async def get_trigger(self, trigger_id: str) -> Trigger:
        try:
            return self.triggers[trigger_id]
        except KeyError:
            raise NotFoundError(f"trigger {trigger_id} not found") from None

    async def create_trigger(self, trigger: Trigger) -> None:
        if trigger.id in self.triggers:
            raise ConflictError(f"trigger {trigger.id} already exists")
        self.triggers[trigger.id] = trigger
        self._revision += 1

    async def delete_trigger(self, trigger_id: str) -> None:
        if self.triggers.pop(trigger_id, None) is None:
            raise NotFoundError(f"trigger {trigger_id} not found")
        self._revision += 1

    async def replace_yaml_triggers(self, triggers: Sequence[Trigger]) -> ReconcileResult:
        wanted = {trigger.id: trigger for trigger in triggers}
        if len(wanted) != len(triggers):
            raise ValueError("YAML triggers must have distinct ids (distinct names)")
        stored = {id_: t for id_, t in self.triggers.items() if t.source is TriggerSource.YAML}
        added = [t for id_, t in wanted.items() if id_ not in stored]
        changed = [t for id_, t in wanted.items() if id_ in stored and _differ(stored[id_], t)]
        removed = [id_ for id_ in stored if id_ not in wanted]
        for trigger in added:
            # An API trigger that holds the id is left alone, as the SQL store leaves it.
            self.triggers.setdefault(trigger.id, _as_yaml(trigger))
        for trigger in changed:  # keeps its id and createdAt
            created_at = stored[trigger.id].created_at
            self.triggers[trigger.id] = _as_yaml(trigger).model_copy(
                update={"created_at": created_at}
            )
        for trigger_id in removed:
            del self.triggers[trigger_id]
        if added or changed or removed:
            self._revision += 1
        unchanged = len(wanted) - len(added) - len(changed)
        return ReconcileResult(len(added), len(changed), len(removed), unchanged)

    async def triggers_revision(self) -> int:
        return self._revision

    # Occurrences

    async def begin_occurrences(self, new: Sequence[NewOccurrence]) -> list[Occurrence]:
        return [self._begin(one) for one in new]

    def _begin(self, new: NewOccurrence) -> Occurrence:
        pair = (new.trigger_id, new.event_id)
        existing = self._by_pair.get(pair)
        if existing is not None:
            stored = self.occurrences[existing]
            if not stored.is_final and new.claimed_by is not None:
                stored = self.occurrences[existing] = replace(stored, claimed_by=new.claimed_by)
            return stored
        self._last_seq += 1
        occurrence = Occurrence(
            id=str(uuid.uuid4()),
            trigger_id=new.trigger_id,
            event_id=new.event_id,
            date=new.date,
            event=new.event,
            status=OccurrenceStatus.PENDING,
            seq=self._last_seq,
            claimed_by=new.claimed_by,
        )
        self.occurrences[occurrence.id] = occurrence
        self._by_pair[pair] = occurrence.id
        return occurrence

    async def finish_occurrence(self, occurrence: Occurrence, outcome: Outcome) -> Occurrence:
        stored = await self.get_occurrence(occurrence.id)
        if stored.is_final:
            return stored
        finished = self.occurrences[stored.id] = stored.finished(outcome)
        return finished

    async def reopen_occurrence(self, occurrence_id: str) -> Occurrence:
        stored = await self.get_occurrence(occurrence_id)
        if stored.status is not OccurrenceStatus.FAILED:
            raise ConflictError(
                f"occurrence {occurrence_id} is {stored.status}; "
                "only failed occurrences can be retried"
            )
        reopened = self.occurrences[stored.id] = replace(stored, status=OccurrenceStatus.PENDING)
        return reopened

    async def get_occurrence(self, occurrence_id: str) -> Occurrence:
        try:
            return self.occurrences[occurrence_id]
        except KeyError:
            raise NotFoundError(f"occurrence {occurrence_id} not found") from None

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
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        for key in (before, after):
            if key is not None and (key.date is not None) != selected.by_date:
                raise ValueError(f"{key} is not a key of this listing's order")

        def place(occurrence: Occurrence) -> tuple[object, ...]:
            return selected.key_of(occurrence).sort_key()

        low = None if after is None else after.sort_key()
        high = None if before is None else before.sort_key()
        found = sorted(
            (
                o
                for o in self.occurrences.values()
                if selected.admits(o)
                and (high is None or place(o) < high)
                and (low is None or place(o) > low)
            ),
            key=place,
        )
        if after is not None:  # the `limit` rows just above the cursor, newest first
            return found[:limit][::-1]
        return found[::-1][:limit]

    # Backtests

    async def count_occurrences(self, since: datetime) -> OccurrenceCounts:
        counts: OccurrenceCounts = {}
        for occurrence in self.occurrences.values():
            if occurrence.date >= since:
                by_status = counts.setdefault(occurrence.trigger_id, {})
                by_status[occurrence.status] = by_status.get(occurrence.status, 0) + 1
        return counts

    async def save_backtest(self, backtest: Backtest) -> None:
        if backtest.finished_at is None:
            raise ValueError(
                f"backtest {backtest.id} is still running: only finished ones are kept"
            )
        self.backtests[backtest.id] = backtest

    async def get_backtest(self, backtest_id: str) -> Backtest:
        try:
            return self.backtests[backtest_id]
        except KeyError:
            raise NotFoundError(f"backtest {backtest_id} not found") from None

    async def list_backtests(self, *, limit: int) -> list[Backtest]:
        newest = sorted(self.backtests.values(), key=lambda b: b.started_at, reverse=True)
        return newest[:limit]

    async def expire_backtests(self, finished_before: datetime) -> int:
        expired = [
            b.id
            for b in self.backtests.values()
            if b.finished_at is not None and b.finished_at < finished_before
        ]
        for backtest_id in expired:
            del self.backtests[backtest_id]
        return len(expired)

    async def occurred_event_ids(self, trigger_id: str, event_ids: Sequence[str]) -> set[str]:
        return {event_id for event_id in event_ids if (trigger_id, event_id) in self._by_pair}

    # Backfills

    async def create_backfill(self, backfill: Backfill, *, max_running: int) -> None:
        running = sum(row.backfill.is_running for row in self.backfills.values())
        if running >= max_running:
            raise TooManyBackfills(
                f"{running} backfills are running, the most allowed (backfill.max_running)"
            )
        self.backfills[backfill.id] = _BackfillRow(replace(backfill, owner=None))

    async def get_backfill(self, backfill_id: str) -> Backfill:
        return self._backfill_row(backfill_id).shown()

    async def list_backfills(self, *, limit: int) -> list[Backfill]:
        rows = sorted(self.backfills.values(), key=lambda r: r.backfill.started_at, reverse=True)
        return [row.shown() for row in rows[:limit]]

    async def cancel_backfill(self, backfill_id: str, at: datetime) -> Backfill:
        row = self._backfill_row(backfill_id)
        if row.backfill.is_running:
            row.backfill = replace(row.backfill, status=BackfillStatus.CANCELLED, finished_at=at)
        return row.shown()

    async def claim_backfill(
        self, owner: str, now: datetime, expires_at: datetime, skip: Sequence[str]
    ) -> tuple[Backfill, Positions] | None:
        rows = sorted(self.backfills.values(), key=lambda r: r.backfill.started_at)
        for row in rows:
            free = row.owner in (None, owner) or (
                row.expires_at is not None and row.expires_at < now
            )
            if row.backfill.is_running and free and row.backfill.id not in skip:
                row.owner, row.expires_at = owner, expires_at
                return row.shown(), dict(row.positions)
        return None

    async def renew_backfill_lease(
        self, backfill_id: str, owner: str, expires_at: datetime
    ) -> bool:
        row = self._backfill_row(backfill_id)
        if row.owner != owner or not row.backfill.is_running:
            return False
        row.expires_at = expires_at
        return True

    async def save_backfill_progress(
        self, backfill: Backfill, positions: Positions, owner: str, *, release: bool = False
    ) -> bool:
        row = self._backfill_row(backfill.id)
        if row.owner != owner or not row.backfill.is_running:
            return False
        row.backfill = replace(row.backfill, counts=backfill.counts)
        row.positions = dict(positions)
        if release:
            row.owner = row.expires_at = None
        return True

    async def finish_backfill(
        self, backfill: Backfill, positions: Positions, owner: str
    ) -> Backfill | None:
        row = self._backfill_row(backfill.id)
        status = row.backfill.status
        if row.owner != owner or status not in (BackfillStatus.RUNNING, BackfillStatus.CANCELLED):
            return None
        if status is BackfillStatus.RUNNING:
            row.backfill = replace(
                row.backfill,
                status=backfill.status,
                finished_at=backfill.finished_at,
                error=backfill.error,
            )
        row.backfill = replace(row.backfill, counts=backfill.counts)
        row.positions = dict(positions)
        row.owner = row.expires_at = None
        return row.shown()

    def _backfill_row(self, backfill_id: str) -> _BackfillRow:
        try:
            return self.backfills[backfill_id]
        except KeyError:
            raise NotFoundError(f"backfill {backfill_id} not found") from None


@dataclass(slots=True)
class _BackfillRow:
    backfill: Backfill
    positions: Positions = field(default_factory=dict)
    owner: str | None = None
    expires_at: datetime | None = None

    def shown(self) -> Backfill:
        return replace(self.backfill, owner=self.owner if self.backfill.is_running else None)


def _differ(stored: Trigger, wanted: Trigger) -> bool:
    return stored.model_dump(include=_DEFINITION_FIELDS) != wanted.model_dump(
        include=_DEFINITION_FIELDS
    )


def _as_yaml(trigger: Trigger) -> Trigger:
    return trigger.model_copy(update={"source": TriggerSource.YAML})


if TYPE_CHECKING:

    def _implements_the_store_port(store: InMemoryStore) -> Store:
        """mypy checks here that InMemoryStore has every method of ports.Store."""
        return store

    def _implements_the_backtest_store_port(store: InMemoryStore) -> BacktestStore:
        return store

    def _implements_the_backfill_store_port(store: InMemoryStore) -> BackfillStore:
        return store

    def _implements_the_occurrence_counter_port(store: InMemoryStore) -> OccurrenceCounter:
        return store
