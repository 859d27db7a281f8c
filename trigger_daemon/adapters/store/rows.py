"""Rows and models: how a Trigger, a NewOccurrence and an Outcome become column values, and
how rows become Trigger and Occurrence again. No I/O; the tables are in schema.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping

from trigger_daemon.core.occurrences import NewOccurrence, Occurrence, OccurrenceStatus, Outcome
from trigger_daemon.core.triggers import Trigger, TriggerSource


def trigger_values(trigger: Trigger, source: TriggerSource | None = None) -> dict[str, Any]:
    return {
        **definition_values(trigger),
        "id": trigger.id,
        "source": str(source or trigger.source),
        "created_at": trigger.created_at,
        "updated_at": datetime.now(UTC),
    }


def definition_values(trigger: Trigger) -> dict[str, Any]:
    """The columns a user's definition sets: what makes a YAML trigger "changed"."""
    return {
        "name": trigger.name,
        "event": trigger.event,
        "version": trigger.version,
        "filter": trigger.filter,
        "workflow_id": trigger.workflow_id,
        "vars": dict(trigger.vars),
        "retry": None
        if trigger.retry is None
        else trigger.retry.model_dump(by_alias=True, exclude_none=True),
        "rate_limit": None
        if trigger.rate_limit is None
        else trigger.rate_limit.model_dump(by_alias=True),
        "max_concurrency": trigger.max_concurrency,
    }


def trigger_from_row(row: RowMapping) -> Trigger:
    return Trigger.model_validate(
        {
            "id": row["id"],
            "name": row["name"],
            "event": row["event"],
            "version": row["version"],
            "filter": row["filter"],
            "workflowID": row["workflow_id"],
            "vars": row["vars"],
            "retry": row["retry"],
            "rateLimit": row["rate_limit"],
            "maxConcurrency": row["max_concurrency"],
            "createdAt": row["created_at"],
            "source": row["source"],
        }
    )


def pending_values(new: NewOccurrence, now: datetime) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "trigger_id": new.trigger_id,
        "event_id": new.event_id,
        "date": new.date,
        "event": new.event,
        "status": str(OccurrenceStatus.PENDING),
        "attempts": 0,
        "vars": {},
        "workflow_instance_id": None,
        "workflow_instance": None,
        "error": None,
        "updated_at": now,
        "claimed_by": new.claimed_by,
    }


# The columns an outcome sets (the keys of `outcome_values`).
OUTCOME_COLUMNS = (
    "status",
    "attempts",
    "vars",
    "workflow_instance_id",
    "workflow_instance",
    "error",
    "updated_at",
)


def outcome_values(outcome: Outcome) -> dict[str, Any]:
    return {
        "status": str(outcome.status),
        "attempts": outcome.attempts,
        "vars": dict(outcome.vars),
        "workflow_instance_id": outcome.workflow_instance_id,
        "workflow_instance": outcome.workflow_instance,
        "error": outcome.error,
        "updated_at": datetime.now(UTC),
    }


def occurrence_from_row(row: Mapping[Any, Any]) -> Occurrence:
    return Occurrence(
        id=row["id"],
        trigger_id=row["trigger_id"],
        event_id=row["event_id"],
        date=row["date"],
        event=row["event"],
        status=OccurrenceStatus(row["status"]),
        attempts=row["attempts"],
        vars=row["vars"],
        workflow_instance_id=row["workflow_instance_id"],
        workflow_instance=row["workflow_instance"],
        error=row["error"],
        seq=row["seq"],
        claimed_by=row.get("claimed_by"),
    )
