"""The backfill routes (an extension): start one, read one, list recent ones, cancel one.

    POST   /v2/backfills                202 {"data": Backfill}
    GET    /v2/backfills                {"data": [Backfill]}, newest first
    GET    /v2/backfills/{backfillID}   {"data": Backfill}
    DELETE /v2/backfills/{backfillID}   {"data": Backfill}, cancelled

Served like the other routes (`application` mounts the router at the root and under
`/api/orchestration`; GET needs the read scope, the others the write scope). A bad request
answers 400 VALIDATION naming the field, an unknown trigger 404 NOT_FOUND, more backfills
than allowed 429 (errorCode VALIDATION).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Protocol

from fastapi import APIRouter, HTTPException, Path, Request

from trigger_daemon.adapters.api.auth import ApiAuth
from trigger_daemon.adapters.api.backfill_schemas import Backfill, BackfillBody
from trigger_daemon.adapters.api.routes import ERROR_RESPONSES, route_adder
from trigger_daemon.adapters.api.schemas import Data
from trigger_daemon.adapters.api.window_requests import read_body, read_window, start_body
from trigger_daemon.core import backfills
from trigger_daemon.core.backfills import BackfillRefused, BackfillRequest, TooManyBackfills
from trigger_daemon.ports import Store
from trigger_daemon.triggers.catalog import TriggerCatalog

BackfillID = Annotated[str, Path(alias="backfillID", max_length=64, description="The backfill id")]


class BackfillService(Protocol):
    """What the routes need of `engine.backfills.Backfills`."""

    async def start(self, request: BackfillRequest) -> backfills.Backfill: ...

    async def get(self, backfill_id: str) -> backfills.Backfill: ...

    async def recent(self, limit: int = ...) -> list[backfills.Backfill]: ...

    async def cancel(self, backfill_id: str) -> backfills.Backfill: ...


class BackfillHandlers:
    def __init__(
        self,
        service: BackfillService,
        catalog: TriggerCatalog,
        store: Store,
        topics: Sequence[str],
    ) -> None:
        self._service = service
        self._catalog = catalog
        self._store = store
        self._topics = tuple(topics)

    async def start(self, request: Request) -> Data[Backfill]:
        body = await read_body(request, BackfillBody, "backfill")
        since, until = read_window(body.since, body.until, "backfill")
        if self._catalog.compiled(body.trigger_id) is None:
            await self._store.get_trigger(body.trigger_id)  # NotFoundError: 404
        wanted = BackfillRequest(body.trigger_id, since, until, self._topics)
        try:
            started = await self._service.start(wanted)
        except TooManyBackfills as exc:
            raise HTTPException(429, str(exc)) from None
        except BackfillRefused as exc:
            raise HTTPException(400, f"invalid backfill: {exc}") from None
        return Data(data=Backfill.of(started))

    async def read(self, backfill_id: BackfillID) -> Data[Backfill]:
        return Data(data=Backfill.of(await self._service.get(backfill_id)))

    async def list_recent(self) -> Data[list[Backfill]]:
        return Data(data=[Backfill.of(b) for b in await self._service.recent()])

    async def cancel(self, backfill_id: BackfillID) -> Data[Backfill]:
        return Data(data=Backfill.of(await self._service.cancel(backfill_id)))


def backfills_router(handlers: BackfillHandlers, auth: ApiAuth | None = None) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["backfills (extension)"], responses=ERROR_RESPONSES)
    _add = route_adder(auth)
    _add(
        router,
        "POST",
        "/backfills",
        handlers.start,
        "v2CreateBackfill",
        status_code=202,
        openapi_extra=start_body(BackfillBody),
        description="Extension: run a stored trigger for real over the events already in "
        "Kafka in [since, until), through the live occurrence path: an event that already has "
        "an occurrence of the trigger is skipped. Durable and resumable; one replica runs it. "
        "Answers at once; read it again for its progress.",
    )
    _add(
        router,
        "GET",
        "/backfills",
        handlers.list_recent,
        "v2ListBackfills",
        description="Extension: the most recent backfills (of every replica), newest first.",
    )
    _add(router, "GET", "/backfills/{backfillID}", handlers.read, "v2ReadBackfill")
    _add(
        router,
        "DELETE",
        "/backfills/{backfillID}",
        handlers.cancel,
        "v2CancelBackfill",
        description="Extension: cancel a running backfill (the replica running it stops "
        "within a few seconds; what it ran stays); a finished one is answered as it is.",
    )
    return router
