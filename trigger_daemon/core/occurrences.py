"""Occurrences: one per (matched trigger, event), the outcome that finishes one, and which of
them a listing selects and in what order."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any


class OccurrenceStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class NewOccurrence:
    """What the pipeline asks the store to record as pending before it calls the API."""

    trigger_id: str
    event_id: str
    event: dict[str, Any]
    date: datetime
    # Who runs it: a replica's claim (see Occurrence.claimed_by). Beginning an occurrence
    # that is already pending claims it again, for the replica that now owns the record.
    claimed_by: str | None = None


@dataclass(frozen=True, slots=True)
class Occurrence:
    id: str
    trigger_id: str
    event_id: str
    date: datetime
    event: dict[str, Any]
    status: OccurrenceStatus
    attempts: int = 0
    vars: dict[str, str] = field(default_factory=dict)
    workflow_instance_id: str | None = None
    workflow_instance: dict[str, Any] | None = None
    error: str | None = None
    seq: int = 0  # store-assigned insertion order; the API's cursors page on it
    # The replica that last began it while pending. A replica that finds the claim taken by
    # another (the partition's new owner, while this one was paused) stops trying it.
    claimed_by: str | None = None

    @property
    def is_final(self) -> bool:
        """A final occurrence is never run again on redelivery."""
        return self.status is not OccurrenceStatus.PENDING

    @property
    def idempotency_key(self) -> str:
        """Sent as the Idempotency-Key header; the same on every retry and redelivery."""
        return f"{self.trigger_id}:{self.event_id}"

    def finished(self, outcome: Outcome) -> Occurrence:
        """This occurrence with `outcome` written on it."""
        return replace(
            self,
            status=outcome.status,
            attempts=outcome.attempts,
            vars=dict(outcome.vars),
            workflow_instance_id=outcome.workflow_instance_id,
            workflow_instance=outcome.workflow_instance,
            error=outcome.error,
        )


@dataclass(frozen=True, slots=True)
class OccurrenceFilter:
    """Which occurrences a listing selects; an unset field admits every value.

    A listing is newest first: by `seq` (insertion order), or by (`date`, `seq`) when the
    filter has a time window, so that the window is one range of an index whatever its age.
    `date` is the time the occurrence was recorded, so the two orders differ only between
    occurrences recorded at nearly the same moment.
    """

    trigger_id: str | None = None
    event_id: str | None = None
    statuses: frozenset[OccurrenceStatus] = frozenset()  # empty: any status
    since: datetime | None = None  # included
    until: datetime | None = None  # excluded

    def __post_init__(self) -> None:
        if self.statuses == frozenset(OccurrenceStatus):  # every status: no status filter
            object.__setattr__(self, "statuses", frozenset())

    @property
    def by_date(self) -> bool:
        """Ordered by (date, seq) rather than by seq."""
        return self.since is not None or self.until is not None

    def admits(self, occurrence: Occurrence) -> bool:
        return (
            (self.trigger_id is None or occurrence.trigger_id == self.trigger_id)
            and (self.event_id is None or occurrence.event_id == self.event_id)
            and (not self.statuses or occurrence.status in self.statuses)
            and (self.since is None or occurrence.date >= self.since)
            and (self.until is None or occurrence.date < self.until)
        )

    def key_of(self, occurrence: Occurrence) -> OccurrenceKey:
        """Where `occurrence` sits in this filter's listing."""
        return OccurrenceKey(occurrence.seq, occurrence.date if self.by_date else None)


@dataclass(frozen=True, slots=True)
class OccurrenceKey:
    """A place in a listing, for paging: `date` is set exactly when the listing is ordered by
    date (OccurrenceFilter.by_date)."""

    seq: int
    date: datetime | None = None

    def sort_key(self) -> tuple[datetime, int] | tuple[int]:
        return (self.seq,) if self.date is None else (self.date, self.seq)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The final state of an occurrence, written once."""

    status: OccurrenceStatus
    attempts: int
    vars: dict[str, str] = field(default_factory=dict)
    workflow_instance_id: str | None = None
    workflow_instance: dict[str, Any] | None = None
    error: str | None = None

    @classmethod
    def succeeded(cls, instance: dict[str, Any], attempts: int, vars: dict[str, str]) -> Outcome:
        return cls(
            OccurrenceStatus.SUCCEEDED,
            attempts,
            vars,
            workflow_instance_id=str(instance.get("id", "")) or None,
            workflow_instance=instance,
        )

    @classmethod
    def failed(cls, error: str, attempts: int, vars: dict[str, str] | None = None) -> Outcome:
        return cls(OccurrenceStatus.FAILED, attempts, vars or {}, error=error)


def outcome_event(
    occurrence_id: str, trigger_id: str, outcome: Outcome, date: datetime
) -> dict[str, Any]:
    """The Formance orchestration event for a final outcome: SUCCEEDED_TRIGGER carries the
    workflow instance id, FAILED_TRIGGER the error (shared/formance-events/orchestration)."""
    payload: dict[str, Any] = {"id": occurrence_id, "triggerID": trigger_id}
    if outcome.status is OccurrenceStatus.SUCCEEDED:
        event_type = "SUCCEEDED_TRIGGER"
        payload["workflowInstanceID"] = outcome.workflow_instance_id
    else:
        event_type = "FAILED_TRIGGER"
        payload["error"] = outcome.error or "failed"
    return {
        "app": "orchestration",
        "version": "v2",
        "date": date.isoformat().replace("+00:00", "Z"),
        "type": event_type,
        "payload": payload,
    }
