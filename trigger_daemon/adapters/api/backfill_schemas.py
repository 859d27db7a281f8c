"""The JSON of the backfill routes (an extension): `Backfill`, camelCase on the wire like the
rest of the API, and the body `POST /v2/backfills` accepts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from trigger_daemon.adapters.api.schemas import UtcDatetime
from trigger_daemon.core import backfills


class BackfillBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trigger_id: str = Field(
        alias="triggerID", min_length=1, max_length=64, description="A stored trigger."
    )
    since: str = Field(
        description="RFC 3339 (2024-05-01T00:00:00Z) or a duration back from now (24h, 7d): "
        "records stamped at or after it."
    )
    until: str | None = Field(
        None, description="As `since`; records stamped before it. Default: now."
    )


class BackfillProgress(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    read: int = Field(description="Records read so far, inside the window or not.")
    total: int = Field(description="An estimate of the records to read.")


class Backfill(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    trigger_id: str = Field(alias="triggerID")
    status: backfills.BackfillStatus
    since: UtcDatetime
    until: UtcDatetime
    topics: list[str]
    scanned: int = Field(description="Records stamped inside the window.")
    matched: int = Field(description="Records the trigger matches (type, version, filter).")
    ran: int = Field(description="Occurrences this backfill ran to their end.")
    skipped: int = Field(
        description="Matched events that already had a finished occurrence of the trigger "
        "(handled live, or by an earlier backfill): nothing was called for them."
    )
    failed: int = Field(description="Of `ran`, the occurrences that ended failed.")
    progress: BackfillProgress
    started_at: UtcDatetime = Field(alias="startedAt")
    finished_at: UtcDatetime | None = Field(None, alias="finishedAt")
    error: str | None = None
    owner: str | None = Field(
        None, description="The replica running it (host:API port), while one holds its lease."
    )

    @classmethod
    def of(cls, backfill: backfills.Backfill) -> Backfill:
        return cls.model_validate(backfills.to_document(backfill))
