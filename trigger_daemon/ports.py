"""The seams between the pipeline/API and the outside world, as protocols and plain values.

Adapters implement these; the engine, the catalog and the API depend only on them, and
`trigger_daemon.testing` has an in-memory fake of each.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

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
from trigger_daemon.core.triggers import Trigger
from trigger_daemon.core.windows import Window


@dataclass(slots=True)
class SourceRecord:
    """One Kafka record as the pipeline sees it, independent of the client library.

    Not frozen, though nothing changes it: one is built per record, and a frozen dataclass
    takes three times as long to build (bench/RESULTS.md)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def headers_map(self) -> dict[str, bytes]:
        return dict(self.headers)


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0


class Store(Protocol):
    """Triggers and occurrences. Errors are StoreError (retriable when a retry may help),
    NotFoundError for unknown ids."""

    async def ping(self) -> None: ...

    async def list_triggers(self, *, name: str | None = None) -> list[Trigger]:
        """All triggers, oldest first (createdAt, then id).

        `name` filters on a case-insensitive substring."""
        ...

    async def get_trigger(self, trigger_id: str) -> Trigger: ...

    async def create_trigger(self, trigger: Trigger) -> None: ...

    async def delete_trigger(self, trigger_id: str) -> None:
        """Remove a trigger; its occurrences stay."""
        ...

    async def replace_yaml_triggers(self, triggers: Sequence[Trigger]) -> ReconcileResult:
        """Make the stored YAML-sourced triggers equal to `triggers`, in one transaction.
        A changed trigger keeps its id and createdAt. Concurrent calls take turns."""
        ...

    async def triggers_revision(self) -> int:
        """A counter that changes with every committed change to the triggers (by any
        process sharing the store); cheap enough to poll every second."""
        ...

    async def begin_occurrences(self, new: Sequence[NewOccurrence]) -> list[Occurrence]:
        """Insert each as `pending` unless (triggerID, eventID) exists; return the stored rows in
        input order (existing ones as they are, maybe already final)."""
        ...

    async def finish_occurrence(self, occurrence: Occurrence, outcome: Outcome) -> Occurrence:
        """Record the outcome of `occurrence` (as begun: pending) and return the stored row.
        An occurrence already final keeps its first outcome (returned unchanged);
        NotFoundError when it is not stored."""
        ...

    async def reopen_occurrence(self, occurrence_id: str) -> Occurrence:
        """Make a `failed` occurrence `pending` again, for a re-drive; ConflictError when it
        is not failed (another re-drive got there first, or it never failed)."""
        ...

    async def get_occurrence(self, occurrence_id: str) -> Occurrence: ...

    async def list_occurrences(
        self,
        trigger_id: str,
        *,
        limit: int,
        before_seq: int | None = None,
        after_seq: int | None = None,
    ) -> list[Occurrence]:
        """Newest first (highest seq first). `before_seq` pages towards older rows, `after_seq`
        towards newer ones; the result is newest first either way."""
        ...

    async def query_occurrences(
        self,
        selected: OccurrenceFilter,
        *,
        limit: int,
        before: OccurrenceKey | None = None,
        after: OccurrenceKey | None = None,
    ) -> list[Occurrence]:
        """The occurrences `selected` admits, newest first in its order (by seq, or by date
        then seq when it has a time window: see OccurrenceFilter). `before` pages towards
        older rows, `after` towards newer ones (keys made by `selected.key_of`); the result
        is newest first either way."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class CallAttempt:
    """One runWorkflow request and how it ended."""

    instance: dict[str, Any] | None = None
    error: str | None = None
    status_code: int | None = None
    transient: bool = False  # worth trying again (connection error, timeout, 5xx, 429, ...)
    retry_after: float | None = None  # seconds, from the answer's Retry-After
    credentials_refused: bool = False  # 401/403: our credentials, not the event, are wrong

    @property
    def succeeded(self) -> bool:
        return self.instance is not None


class WorkflowApi(Protocol):
    """The orchestration API, one request at a time; retries are decided by the caller."""

    async def start_workflow(
        self,
        workflow_id: str,
        variables: Mapping[str, str],
        *,
        idempotency_key: str,
        traceparent: str | None = None,
    ) -> CallAttempt: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: SourceRecord
    reason: str
    detail: str
    trigger_id: str | None = None
    extra_headers: Mapping[str, str] = field(default_factory=dict)


class DeadLetterSink(Protocol):
    async def publish(self, letter: DeadLetter) -> None:
        """Durably publish, or raise BrokerError; never drop silently."""
        ...


class OutcomeSink(Protocol):
    async def publish(self, event: Mapping[str, Any], key: str) -> None:
        """Durably publish an outcome event, or raise BrokerError."""
        ...


class Source(Protocol):
    """Batches of records per partition, commits of the next offset to read, flow control."""

    async def fetch(
        self, timeout_seconds: float
    ) -> Mapping[tuple[str, int], Sequence[SourceRecord]]: ...

    async def commit(self, offsets: Mapping[tuple[str, int], int]) -> None: ...

    def set_revocation_handler(
        self, handler: Callable[[set[tuple[str, int]]], Awaitable[None]]
    ) -> None:
        """`handler` runs before partitions move to another member; it must leave their
        offsets committed."""
        ...

    def assigned(self) -> set[tuple[str, int]]: ...

    def joined(self) -> bool:
        """True once the consumer has joined its group, with or without partitions (a member
        beyond the partition count gets none and is still ready)."""
        ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    async def caught_up(self) -> bool:
        """True when partitions are assigned and every one has been read to its high-water
        mark."""
        ...


@dataclass(frozen=True, slots=True)
class HistoryChunk:
    """Records read from the past, for a backtest."""

    records: Sequence[SourceRecord]  # those inside the window, in offset order per partition
    read: int  # the records read to find them, inside the window or not
    total: int  # the current estimate of all the records to read


class History(Protocol):
    """The records already in the topics, read outside the consumer group (nothing committed)."""

    async def missing_topics(self, topics: Sequence[str]) -> list[str]:
        """The names in `topics` that the cluster does not have."""
        ...

    def read(
        self,
        topics: Sequence[str],
        window: Window,
        start: Mapping[tuple[str, int], int] | None = None,
    ) -> AsyncGenerator[HistoryChunk, None]:
        """Every record stamped inside `window`, up to the end offsets taken as it starts;
        a partition ends at its first record stamped at or after the window's end. A
        partition in `start` is read from that offset on (a resumed backfill)."""
        ...


class BacktestStore(Protocol):
    """Finished backtests (kept for a while, so any replica can answer for them), and which
    events already have an occurrence."""

    async def save_backtest(self, backtest: Backtest) -> None:
        """Insert or replace the backtest with this id."""
        ...

    async def get_backtest(self, backtest_id: str) -> Backtest:
        """NotFoundError when it is not stored (never finished here, or expired)."""
        ...

    async def list_backtests(self, *, limit: int) -> list[Backtest]:
        """The most recently started first."""
        ...

    async def expire_backtests(self, finished_before: datetime) -> int:
        """Remove those that finished before `finished_before`; how many were removed."""
        ...

    async def occurred_event_ids(self, trigger_id: str, event_ids: Sequence[str]) -> set[str]:
        """Those of `event_ids` that have an occurrence of `trigger_id`, whatever its status."""
        ...


class BackfillStore(Protocol):
    """Backfills, their saved positions and their leases (module engine/backfills.py says
    how they are used). `owner` names a replica; a write of one that does not hold the
    lease changes nothing and answers False (or None)."""

    async def create_backfill(self, backfill: Backfill, *, max_running: int) -> None:
        """Insert a running one; TooManyBackfills when `max_running` are running already."""
        ...

    async def get_backfill(self, backfill_id: str) -> Backfill:
        """NotFoundError when it is not stored."""
        ...

    async def list_backfills(self, *, limit: int) -> list[Backfill]:
        """The most recently started first."""
        ...

    async def cancel_backfill(self, backfill_id: str, at: datetime) -> Backfill:
        """Mark a running one cancelled (its holder stops when it next renews its lease);
        a finished one is returned as it is. NotFoundError when it is not stored."""
        ...

    async def claim_backfill(
        self, owner: str, now: datetime, expires_at: datetime, skip: Sequence[str]
    ) -> tuple[Backfill, Positions] | None:
        """Take the lease of the oldest running backfill not in `skip` whose lease is free,
        expired before `now`, or already `owner`'s; with its saved positions."""
        ...

    async def renew_backfill_lease(
        self, backfill_id: str, owner: str, expires_at: datetime
    ) -> bool:
        """False when `owner` no longer holds it or it is no longer running."""
        ...

    async def save_backfill_progress(
        self, backfill: Backfill, positions: Positions, owner: str, *, release: bool = False
    ) -> bool:
        """Save the counts and positions of a running one `owner` holds; `release` also lets
        its lease go (any replica may claim it at once). False when it is not `owner`'s."""
        ...

    async def finish_backfill(
        self, backfill: Backfill, positions: Positions, owner: str
    ) -> Backfill | None:
        """Save its final counts, status, finish time and error, and release its lease; one
        cancelled meanwhile stays cancelled. The stored backfill, or None when it is not
        `owner`'s."""
        ...


# Per trigger id, how many occurrences by status (a status with none is absent).
OccurrenceCounts = dict[str, dict[OccurrenceStatus, int]]


class OccurrenceCounter(Protocol):
    """Occurrence counts per trigger over a recent window (the console's triggers page)."""

    async def count_occurrences(self, since: datetime) -> OccurrenceCounts:
        """The occurrences dated at or after `since`, counted per trigger and status."""
        ...
