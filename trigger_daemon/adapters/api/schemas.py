"""The JSON the API answers with, as pydantic models named like the Formance spec's schemas.

These models are the one definition of the wire shape: FastAPI serialises responses through them
(camelCase aliases, null optionals omitted) and documents them in the OpenAPI document. Request
bodies are not parsed here: a trigger body is validated by `core.triggers.parse_definition`, so
every problem reaches the client through the same message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from trigger_daemon.core import occurrences, rehearsal, triggers

T = TypeVar("T")


def as_utc(value: datetime) -> datetime:
    """RFC 3339 in UTC ("...Z"); a naive datetime from a store is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class _Wire(BaseModel):
    """Built from the core's objects by attribute name; written by alias."""

    model_config = ConfigDict(populate_by_name=True, from_attributes=True)


class ErrorCode(StrEnum):
    """The only codes the Formance SDKs accept; a 409 conflict carries VALIDATION."""

    VALIDATION = "VALIDATION"
    NOT_FOUND = "NOT_FOUND"
    INTERNAL = "INTERNAL"


class Error(_Wire):
    error_code: ErrorCode = Field(alias="errorCode")
    error_message: str = Field(alias="errorMessage")


class Trigger(_Wire):
    id: str
    name: str | None = None
    event: str
    version: str | None = None
    filter: str | None = None
    workflow_id: str = Field(alias="workflowID")
    vars: dict[str, str] = Field(default_factory=dict)
    retry: triggers.RetryOverride | None = Field(
        default=None,
        description="Extension: this trigger's own retry policy; unset keys use the global one.",
    )
    rate_limit: triggers.RateLimit | None = Field(
        default=None,
        alias="rateLimit",
        description="Extension: at most requestsPerUnit runWorkflow requests per unit, at most "
        "`burst` at once; a throttled event waits (per replica).",
    )
    max_concurrency: int | None = Field(
        default=None,
        alias="maxConcurrency",
        description="Extension: at most this many runWorkflow requests in flight (per replica).",
    )
    created_at: UtcDatetime = Field(alias="createdAt")
    source: triggers.TriggerSource = Field(
        description="Extension: `yaml` triggers are managed by the configuration file and "
        "cannot be deleted through the API."
    )

    @classmethod
    def of(cls, trigger: triggers.Trigger) -> Trigger:
        return cls.model_validate(trigger)


class TriggerOccurrence(_Wire):
    id: str
    trigger_id: str = Field(alias="triggerID")
    event_id: str = Field(alias="eventID")
    date: UtcDatetime
    event: dict[str, Any] = Field(description="The whole event envelope, as received.")
    status: occurrences.OccurrenceStatus
    attempts: int
    vars: dict[str, str]
    workflow_instance_id: str | None = Field(default=None, alias="workflowInstanceID")
    workflow_instance: dict[str, Any] | None = Field(
        default=None,
        alias="workflowInstance",
        description="The workflow instance the orchestration API returned, as it returned it.",
    )
    error: str | None = None

    @classmethod
    def of(cls, occurrence: occurrences.Occurrence) -> TriggerOccurrence:
        return cls.model_validate(occurrence)


class FilterResult(BaseModel):
    match: bool
    error: str | None = None


class VariableResult(BaseModel):
    value: str | None = None
    error: str | None = None


class ExplainedValue(_Wire):
    """An expression and its value, or its error. The value is always written, null included:
    a filter clause that gives null is the usual reason for "no match"."""

    expression: str
    value: Any = None
    error: str | None = None
    truthy: bool | None = None

    @model_serializer(mode="wrap")
    def _value_even_when_null(self, write: SerializerFunctionWrapHandler) -> dict[str, Any]:
        written: dict[str, Any] = write(self)
        if self.error is None:
            written["value"] = self.value
        return written

    @classmethod
    def of(cls, evaluated: rehearsal.Evaluated, *, with_truth: bool = True) -> ExplainedValue:
        return cls(
            expression=evaluated.expression,
            value=evaluated.value,
            error=evaluated.error,
            truthy=evaluated.truthy if with_truth else None,
        )


class FieldExplanation(_Wire):
    expected: str | None = Field(None, description="What the trigger wants; absent: any.")
    actual: str | None = None
    matches: bool


class FilterExplanation(_Wire):
    result: ExplainedValue
    operator: str | None = Field(
        None, description="`&&` or `||` when the filter is made of top-level clauses."
    )
    clauses: list[ExplainedValue] = Field(default_factory=list)


class TriggerTestExplanation(_Wire):
    """Extension: what decided a test's answer. The SDKs ignore it."""

    decision: str = Field(description="One sentence: what decided the answer.")
    event_checked: bool = Field(
        alias="eventChecked",
        description="False for a bare payload: its type and version are not checked.",
    )
    type: FieldExplanation
    version: FieldExplanation
    filter: FilterExplanation | None = Field(None, description="Absent: the trigger has none.")
    variables: dict[str, ExplainedValue]

    @classmethod
    def of(cls, explanation: rehearsal.Explanation) -> TriggerTestExplanation:
        filter_ = explanation.filter
        return cls(
            decision=explanation.decision,
            event_checked=explanation.event_checked,
            type=FieldExplanation.model_validate(explanation.type),
            version=FieldExplanation.model_validate(explanation.version),
            filter=None
            if filter_ is None
            else FilterExplanation(
                result=ExplainedValue.of(filter_.result),
                operator=filter_.operator,
                clauses=[ExplainedValue.of(clause) for clause in filter_.clauses],
            ),
            variables={
                name: ExplainedValue.of(var, with_truth=False)
                for name, var in explanation.variables.items()
            },
        )


class TriggerTest(BaseModel):
    filter: FilterResult
    variables: dict[str, VariableResult]
    explain: TriggerTestExplanation | None = None

    @classmethod
    def of(cls, report: rehearsal.TriggerTestReport) -> TriggerTest:
        return cls(
            filter=FilterResult(match=report.match, error=report.filter_error),
            variables={
                name: VariableResult(value=var.value, error=var.error)
                for name, var in report.variables.items()
            },
            explain=TriggerTestExplanation.of(report.explanation),
        )


class Data(BaseModel, Generic[T]):
    data: T


class Cursor(_Wire, Generic[T]):
    page_size: int = Field(alias="pageSize")
    has_more: bool = Field(alias="hasMore")
    previous: str | None = None
    next: str | None = None
    data: list[T]


class CursorResponse(BaseModel, Generic[T]):
    cursor: Cursor[T]


class ServerInfo(BaseModel):
    version: str


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="`ready`, or `unavailable` when any check failed.")
    checks: dict[str, bool]
    reasons: dict[str, str] | None = Field(
        None, description="Why each failing check fails (only when some check fails)."
    )
