"""The JSON of the backtest routes (an extension): `Backtest` and its samples, camelCase on
the wire like the rest of the API, and the body `POST /v2/backtests` accepts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trigger_daemon.adapters.api.schemas import UtcDatetime
from trigger_daemon.core import backtests
from trigger_daemon.core.backtests import DEFAULT_SAMPLES, MAX_SAMPLES


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, from_attributes=True)


class BacktestBody(BaseModel):
    """What `POST /v2/backtests` reads. `trigger` is checked by the same code as a created
    trigger, so its problems read the same."""

    model_config = ConfigDict(extra="forbid")

    trigger_id: str | None = Field(
        None, alias="triggerID", min_length=1, max_length=64, description="A stored trigger."
    )
    trigger: Any = Field(
        None, description="An unsaved trigger: the body `POST /v2/triggers` takes."
    )
    since: str = Field(
        description="RFC 3339 (2024-05-01T00:00:00Z) or a duration back from now (24h, 7d): "
        "records stamped at or after it."
    )
    until: str | None = Field(
        None, description="As `since`; records stamped before it. Default: now."
    )
    topics: list[str] | None = Field(
        None, min_length=1, max_length=100, description="Default: the daemon's topics."
    )
    samples: int = Field(
        DEFAULT_SAMPLES,
        ge=0,
        le=MAX_SAMPLES,
        description=f"How many matched events to show (at most {MAX_SAMPLES}).",
    )


class BacktestSample(_Wire):
    event_id: str = Field(alias="eventID")
    date: UtcDatetime = Field(description="The record's timestamp.")
    topic: str
    partition: int
    offset: int
    vars: dict[str, str] | None = Field(None, description="The vars a live run would send.")
    error: str | None = Field(None, description="Why a live run would fail this occurrence.")


class BacktestProgress(_Wire):
    read: int = Field(description="Records read so far, inside the window or not.")
    total: int = Field(description="An estimate of the records to read.")


class Backtest(_Wire):
    id: str
    status: backtests.BacktestStatus
    trigger_id: str | None = Field(None, alias="triggerID", description="Absent: unsaved.")
    since: UtcDatetime
    until: UtcDatetime
    topics: list[str]
    scanned: int = Field(description="Records stamped inside the window.")
    matched: int = Field(
        description="Records the trigger matches (type, version, filter), var errors included."
    )
    filter_errors: int = Field(alias="filterErrors")
    var_errors: int = Field(alias="varErrors", description="Matched, but a var fails.")
    already_occurred: int = Field(
        alias="alreadyOccurred",
        description="Matched records whose event already has an occurrence of the trigger.",
    )
    unprocessable: int = Field(description="Records a live run would dead-letter.")
    samples: list[BacktestSample]
    progress: BacktestProgress
    started_at: UtcDatetime = Field(alias="startedAt")
    finished_at: UtcDatetime | None = Field(None, alias="finishedAt")
    error: str | None = None

    @classmethod
    def of(cls, backtest: backtests.Backtest) -> Backtest:
        return cls.model_validate(backtests.to_document(backtest))
