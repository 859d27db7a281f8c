"""Trigger definitions: validation with messages that name the field, and compilation.

A definition is what a user writes (YAML or API body). A Trigger is a stored definition
with its id, creation date and source. A CompiledTrigger holds its JMESPath compiled once,
so the per-event path only evaluates.
"""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from trigger_daemon.core.expressions import (
    Expression,
    ExpressionError,
    compile_expression,
    render_value,
)
from trigger_daemon.core.retry import RetryPolicy
from trigger_daemon.errors import TriggerValidationError

# YAML triggers get a UUIDv5 of their name in this namespace: stable across restarts and replicas.
YAML_TRIGGER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:trigger-daemon:yaml-trigger")

MAX_NAME_LENGTH = 256
MAX_VARS = 100


class TriggerSource(StrEnum):
    API = "api"
    YAML = "yaml"


VarName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class RetryOverride(BaseModel):
    """A trigger's own retry policy (an extension field); unset keys keep the global ones."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    max_attempts: int | None = Field(default=None, alias="maxAttempts", ge=1, le=1000)
    initial_backoff_seconds: float | None = Field(
        default=None, alias="initialBackoffSeconds", gt=0, le=3600
    )
    max_backoff_seconds: float | None = Field(
        default=None, alias="maxBackoffSeconds", gt=0, le=3600
    )

    def over(self, default: RetryPolicy) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts or default.max_attempts,
            initial_backoff_seconds=self.initial_backoff_seconds or default.initial_backoff_seconds,
            max_backoff_seconds=self.max_backoff_seconds or default.max_backoff_seconds,
        )


class RateLimit(BaseModel):
    """At most `requestsPerUnit` runWorkflow requests per `unit`, and never more than `burst`
    at once, however long the trigger was idle (a token bucket of `burst` tokens)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    requests_per_unit: int = Field(alias="requestsPerUnit", ge=1, le=1_000_000)
    unit: Literal["second", "minute", "hour"]
    burst: int = Field(default=1, ge=1, le=1_000_000)

    @property
    def per_second(self) -> float:
        return self.requests_per_unit / _UNIT_SECONDS[self.unit]


_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600}


class TriggerDefinition(BaseModel):
    """The fields a user writes, camelCase on the wire as in the Formance API, plus the
    extensions `retry`, `rateLimit` and `maxConcurrency`."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    name: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    event: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    version: str | None = Field(default=None, max_length=64)
    filter: str | None = None
    workflow_id: str = Field(alias="workflowID", min_length=1, max_length=MAX_NAME_LENGTH)
    vars: dict[VarName, str] = Field(default_factory=dict, max_length=MAX_VARS)
    retry: RetryOverride | None = None
    rate_limit: RateLimit | None = Field(default=None, alias="rateLimit")
    max_concurrency: int | None = Field(default=None, alias="maxConcurrency", ge=1, le=100_000)


class Trigger(TriggerDefinition):
    """A stored trigger."""

    id: str
    created_at: datetime = Field(alias="createdAt")
    source: TriggerSource = TriggerSource.API


def yaml_trigger_id(name: str) -> str:
    return str(uuid.uuid5(YAML_TRIGGER_NAMESPACE, name))


def parse_definition(raw: object) -> TriggerDefinition:
    """Validate a user's definition, shape and expressions; every problem is listed."""
    if not isinstance(raw, Mapping):
        raise TriggerValidationError([f"a trigger must be a mapping, got {type(raw).__name__}"])
    try:
        definition = TriggerDefinition.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise TriggerValidationError(_describe_shape_errors(exc)) from None
    compile_trigger_expressions(definition)
    return definition


@dataclass(frozen=True, slots=True)
class CompiledTrigger:
    trigger: Trigger
    filter: Expression | None
    vars: Mapping[str, Expression]

    def evaluate_filter(self, document: Mapping[str, Any]) -> Any:
        """The filter's raw result (None when there is no filter means "match": see matching)."""
        return True if self.filter is None else self.filter.evaluate(document)

    def render_vars(self, document: Mapping[str, Any]) -> dict[str, str]:
        """Every var as a string; raises ExpressionError naming the first var that fails."""
        rendered: dict[str, str] = {}
        for name, expression in self.vars.items():
            try:
                rendered[name] = render_value(expression.evaluate(document))
            except ExpressionError as exc:
                raise ExpressionError(f"var {name!r} ({expression.source}): {exc}") from exc
        return rendered


def compile_trigger(trigger: Trigger) -> CompiledTrigger:
    filter_, vars_ = compile_trigger_expressions(trigger)
    return CompiledTrigger(trigger=trigger, filter=filter_, vars=vars_)


def compile_trigger_expressions(
    definition: TriggerDefinition,
) -> tuple[Expression | None, dict[str, Expression]]:
    problems: list[str] = []
    filter_: Expression | None = None
    if definition.filter is not None:
        try:
            filter_ = compile_expression(definition.filter)
        except ExpressionError as exc:
            problems.append(f"filter {definition.filter!r}: {exc}")
    vars_: dict[str, Expression] = {}
    for name, source in definition.vars.items():
        try:
            vars_[name] = compile_expression(source)
        except ExpressionError as exc:
            problems.append(f"vars.{name} {source!r}: {exc}")
    if problems:
        raise TriggerValidationError(problems)
    return filter_, vars_


_KNOWN_FIELDS = (
    "name",
    "event",
    "version",
    "filter",
    "workflowID",
    "vars",
    "retry",
    "rateLimit",
    "maxConcurrency",
)


def _describe_shape_errors(exc: pydantic.ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "trigger"
        if error["type"] == "extra_forbidden":
            field = str(error["loc"][0])
            hint = difflib.get_close_matches(field, _KNOWN_FIELDS, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append(f"{location}: unknown field{suggestion}")
        elif error["type"] == "missing":
            problems.append(f"{location}: is required")
        else:
            problems.append(f"{location}: {error['msg']}")
    return problems
