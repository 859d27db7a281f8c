"""The console's extension routes: the daemon's activity now, and occurrence counts.

    GET /v2/status             {"data": Status}: events/s and matches/s over the last minute,
                               records in flight, consumer lag, the orchestration circuit
    GET /v2/occurrence-counts  {"data": OccurrenceCounts}: per trigger, its occurrences by
                               status since `since` (default: the last 24 hours)

Served like the other routes (root and `/api/orchestration`, the read scope). The status is
computed in this process by the callable the composition root passes (no scraping of
`/metrics`); the counts are one grouped store query.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from trigger_daemon.adapters.api.auth import ApiAuth
from trigger_daemon.adapters.api.routes import ERROR_RESPONSES, route_adder
from trigger_daemon.adapters.api.schemas import Data, UtcDatetime
from trigger_daemon.core.windows import parse_time
from trigger_daemon.ports import OccurrenceCounter


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class Status(_Wire):
    events_per_second: float = Field(
        alias="eventsPerSecond", description="Records read from Kafka per second, by this process."
    )
    matches_per_second: float = Field(
        alias="matchesPerSecond", description="Events that matched at least one trigger per second."
    )
    window_seconds: float = Field(
        alias="windowSeconds", description="The rates' window: a minute, less just after a start."
    )
    in_flight: int = Field(alias="inFlight", description="Records being handled now.")
    consumer_lag: int | None = Field(
        None,
        alias="consumerLag",
        description="Records behind the high-water marks of this replica's partitions; absent "
        "before any is assigned.",
    )
    circuit: str = Field(
        description="The orchestration API's circuit breaker: `closed` (calls flow), `open` "
        "(calls wait) or `half_open` (a probe is out)."
    )
    circuit_reason: str | None = Field(
        None, alias="circuitReason", description="Why calls wait, while the circuit is not closed."
    )


class TriggerOccurrenceCounts(_Wire):
    trigger_id: str = Field(alias="triggerID")
    pending: int = 0
    succeeded: int = 0
    failed: int = 0


class OccurrenceCounts(_Wire):
    since: UtcDatetime
    triggers: list[TriggerOccurrenceCounts] = Field(
        description="Triggers with at least one occurrence since `since`."
    )


# Builds the status now, in this process.
StatusSource = Callable[[], Status]

Since = Annotated[
    str,
    Query(
        max_length=64,
        description="RFC 3339, or a duration back from now (24h, 7d). Default: 24h.",
    ),
]


class StatusHandlers:
    def __init__(self, status: StatusSource, counter: OccurrenceCounter) -> None:
        self._status = status
        self._counter = counter

    async def status(self) -> Data[Status]:
        return Data(data=self._status())

    async def occurrence_counts(self, since: Since = "24h") -> Data[OccurrenceCounts]:
        try:
            moment = parse_time(since, datetime.now(UTC))
        except ValueError as exc:
            raise HTTPException(400, f"invalid request: since: {exc}") from None
        counts = await self._counter.count_occurrences(moment)
        rows = [
            TriggerOccurrenceCounts(trigger_id=trigger_id, **{str(s): n for s, n in by.items()})
            for trigger_id, by in sorted(counts.items())
        ]
        return Data(data=OccurrenceCounts(since=moment, triggers=rows))


def status_router(handlers: StatusHandlers, auth: ApiAuth | None = None) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["console (extension)"], responses=ERROR_RESPONSES)
    _add = route_adder(auth)
    _add(
        router,
        "GET",
        "/status",
        handlers.status,
        "v2GetStatus",
        description="Extension: this process's activity now (the console's health strip).",
    )
    _add(
        router,
        "GET",
        "/occurrence-counts",
        handlers.occurrence_counts,
        "v2CountOccurrences",
        description="Extension: per trigger, its occurrences by status since `since`.",
    )
    return router
