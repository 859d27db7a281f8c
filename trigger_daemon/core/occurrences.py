"""Occurrences: one per (matched trigger, event), and the outcome that finishes one."""

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
