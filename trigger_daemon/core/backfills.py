"""A backfill: one trigger run for real over a window of past records, and its counts.

`Backfill` is a snapshot of one, as the API answers it and the store keeps it. `BackfillTally`
counts a running one so that what is saved always matches the position saved with it: a
count joins the durable totals only once every record before it in its partition has
finished (the pipeline's commit point), so a backfill resumed from its saved position counts
each record of the window once. Reading, calling and the lease belong to the shell
(engine/backfills.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

Partition = tuple[str, int]
Positions = dict[Partition, int]  # per partition, the next offset to read


class BackfillStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class BackfillRefused(ValueError):
    """The request cannot start (an unknown topic, a bad window): the client's to fix."""


class TooManyBackfills(BackfillRefused):
    """As many backfills as allowed are running; the client may try again later."""


@dataclass(frozen=True, slots=True)
class Counts:
    scanned: int = 0  # records stamped inside the window
    matched: int = 0
    ran: int = 0  # occurrences this backfill ran to their end
    skipped: int = 0  # matched events whose occurrence of the trigger was already final
    failed: int = 0  # of `ran`, those that ended failed
    read: int = 0  # records read, inside the window or not (an estimate after a resume)
    total: int = 0  # an estimate of the records to read

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.scanned + other.scanned,
            self.matched + other.matched,
            self.ran + other.ran,
            self.skipped + other.skipped,
            self.failed + other.failed,
            self.read + other.read,
            max(self.total, other.total),
        )

    def document(self) -> dict[str, int]:
        return {
            "scanned": self.scanned,
            "matched": self.matched,
            "ran": self.ran,
            "skipped": self.skipped,
            "failed": self.failed,
            "read": self.read,
            "total": self.total,
        }

    @classmethod
    def of(cls, document: Mapping[str, int]) -> Counts:
        return cls(**{name: int(document.get(name, 0)) for name in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class Backfill:
    id: str
    trigger_id: str
    status: BackfillStatus
    since: datetime
    until: datetime
    topics: tuple[str, ...]
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    counts: Counts = Counts()
    owner: str | None = None  # the replica holding its lease, while one does

    @property
    def is_running(self) -> bool:
        return self.status is BackfillStatus.RUNNING


@dataclass(frozen=True, slots=True)
class BackfillRequest:
    trigger_id: str
    since: datetime
    until: datetime
    topics: tuple[str, ...]


class Outcome(StrEnum):
    """How one matched record ended in a backfill."""

    RAN = "ran"
    FAILED = "failed"  # ran, and its occurrence ended failed
    SKIPPED = "skipped"


@dataclass(slots=True)
class _PartitionCounts:
    # Per record not yet durable, in offset order: (offset, matched).
    scanned: deque[tuple[int, bool]] = field(default_factory=deque)
    outcomes: list[tuple[int, Outcome]] = field(default_factory=list)


class BackfillTally:
    """The counts of a running backfill: `durable` ones (records before the saved position)
    and all of them (`current`, what the API shows while it runs)."""

    def __init__(self, durable: Counts = Counts()) -> None:
        self.durable = durable
        self.read = 0  # read since this run started
        self.total = durable.total
        self._pending: dict[Partition, _PartitionCounts] = {}

    def scanned(self, partition: Partition, offset: int, *, matched: bool) -> None:
        self._partition(partition).scanned.append((offset, matched))

    def ended(self, partition: Partition, offset: int, outcome: Outcome) -> None:
        self._partition(partition).outcomes.append((offset, outcome))

    def settle(self, positions: Mapping[Partition, int]) -> Counts:
        """Move the counts of records before `positions` to the durable totals (every record
        before a committed position has finished); the durable counts, read included."""
        scanned = matched = ran = skipped = failed = 0
        for partition, next_offset in positions.items():
            pending = self._pending.get(partition)
            if pending is None:
                continue
            queue = pending.scanned
            while queue and queue[0][0] < next_offset:
                _, was_matched = queue.popleft()
                scanned += 1
                matched += was_matched
            kept = []
            for offset, outcome in pending.outcomes:
                if offset >= next_offset:
                    kept.append((offset, outcome))
                elif outcome is Outcome.SKIPPED:
                    skipped += 1
                else:
                    ran += 1
                    failed += outcome is Outcome.FAILED
            pending.outcomes = kept
        settled = Counts(scanned, matched, ran, skipped, failed)
        self.durable = replace(
            self.durable + settled, read=self.durable.read + self.read, total=self.total
        )
        self.read = 0
        return self.durable

    def current(self) -> Counts:
        """Every count so far, durable or not."""
        pending = [
            Counts(
                scanned=len(p.scanned),
                matched=sum(matched for _, matched in p.scanned),
                ran=sum(outcome is not Outcome.SKIPPED for _, outcome in p.outcomes),
                skipped=sum(outcome is Outcome.SKIPPED for _, outcome in p.outcomes),
                failed=sum(outcome is Outcome.FAILED for _, outcome in p.outcomes),
            )
            for p in self._pending.values()
        ]
        every = sum(pending, self.durable)
        return replace(every, read=self.durable.read + self.read, total=self.total)

    def _partition(self, partition: Partition) -> _PartitionCounts:
        found = self._pending.get(partition)
        if found is None:
            found = self._pending[partition] = _PartitionCounts()
        return found


def positions_document(positions: Mapping[Partition, int]) -> list[list[Any]]:
    """JSON for the store: [[topic, partition, next offset], …] (JSON keys are strings)."""
    return [[topic, partition, offset] for (topic, partition), offset in sorted(positions.items())]


def positions_of(document: list[list[Any]] | None) -> Positions:
    return {
        (str(topic), int(partition)): int(offset) for topic, partition, offset in document or []
    }


def to_document(backfill: Backfill) -> dict[str, Any]:
    """The backfill as the API answers it (camelCase, RFC 3339 times, absent fields left out):
    what `backfill --wait` prints."""
    counts = backfill.counts
    document = {
        "id": backfill.id,
        "triggerID": backfill.trigger_id,
        "status": str(backfill.status),
        "since": _rfc3339(backfill.since),
        "until": _rfc3339(backfill.until),
        "topics": list(backfill.topics),
        "scanned": counts.scanned,
        "matched": counts.matched,
        "ran": counts.ran,
        "skipped": counts.skipped,
        "failed": counts.failed,
        "progress": {"read": counts.read, "total": max(counts.total, counts.read)},
        "startedAt": _rfc3339(backfill.started_at),
        "finishedAt": None if backfill.finished_at is None else _rfc3339(backfill.finished_at),
        "error": backfill.error,
        "owner": backfill.owner,
    }
    return {key: value for key, value in document.items() if value is not None}


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
