"""The backtest routes (an extension): start one, read one, list recent ones, cancel one.

    POST   /v2/backtests                202 {"data": Backtest}
    GET    /v2/backtests                {"data": [Backtest]}, newest first
    GET    /v2/backtests/{backtestID}   {"data": Backtest}
    DELETE /v2/backtests/{backtestID}   {"data": Backtest} as it ended (cancelled)

Served like the other routes (`application` mounts the router at the root and under
`/api/orchestration`; GET needs the read scope, the others the write scope). A bad request
answers 400 VALIDATION naming the field; an unsaved trigger is checked as a created one is;
more backtests than allowed answer 429 (errorCode VALIDATION).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Protocol

from fastapi import APIRouter, HTTPException, Path, Request

from trigger_daemon.adapters.api.auth import ApiAuth
from trigger_daemon.adapters.api.backtest_schemas import Backtest, BacktestBody
from trigger_daemon.adapters.api.routes import ERROR_RESPONSES, route_adder
from trigger_daemon.adapters.api.schemas import Data
from trigger_daemon.adapters.api.window_requests import read_body, read_window, start_body
from trigger_daemon.core import backtests
from trigger_daemon.core.backtests import BacktestRefused, BacktestRequest, TooManyBacktests
from trigger_daemon.core.triggers import CompiledTrigger, compile_trigger, parse_definition
from trigger_daemon.ports import Store
from trigger_daemon.triggers.catalog import TriggerCatalog

BacktestID = Annotated[str, Path(alias="backtestID", max_length=64, description="The backtest id")]


class BacktestService(Protocol):
    """What the routes need of `engine.backtests.Backtests`."""

    async def start(self, request: BacktestRequest) -> backtests.Backtest: ...

    async def get(self, backtest_id: str) -> backtests.Backtest: ...

    async def recent(self, limit: int = ...) -> list[backtests.Backtest]: ...

    async def cancel(self, backtest_id: str) -> backtests.Backtest: ...


class BacktestHandlers:
    def __init__(
        self,
        service: BacktestService,
        catalog: TriggerCatalog,
        store: Store,
        default_topics: Sequence[str],
    ) -> None:
        self._service = service
        self._catalog = catalog
        self._store = store
        self._default_topics = tuple(default_topics)

    async def start(self, request: Request) -> Data[Backtest]:
        body = await read_body(request, BacktestBody, "backtest")
        compiled = await self._trigger(body)
        since, until = read_window(body.since, body.until, "backtest")
        wanted = BacktestRequest(
            compiled=compiled,
            trigger_id=body.trigger_id,
            since=since,
            until=until,
            topics=tuple(body.topics or self._default_topics),
            samples=body.samples,
        )
        try:
            started = await self._service.start(wanted)
        except TooManyBacktests as exc:
            raise HTTPException(429, str(exc)) from None
        except BacktestRefused as exc:
            raise HTTPException(400, f"invalid backtest: {exc}") from None
        return Data(data=Backtest.of(started))

    async def read(self, backtest_id: BacktestID) -> Data[Backtest]:
        return Data(data=Backtest.of(await self._service.get(backtest_id)))

    async def list_recent(self) -> Data[list[Backtest]]:
        return Data(data=[Backtest.of(b) for b in await self._service.recent()])

    async def cancel(self, backtest_id: BacktestID) -> Data[Backtest]:
        return Data(data=Backtest.of(await self._service.cancel(backtest_id)))

    async def _trigger(self, body: BacktestBody) -> CompiledTrigger:
        if (body.trigger_id is None) == (body.trigger is None):
            raise HTTPException(
                400,
                "invalid backtest: give triggerID (a stored trigger) or trigger (an unsaved "
                "one), not both",
            )
        if body.trigger_id is not None:
            compiled = self._catalog.compiled(body.trigger_id)
            if compiled is None:  # not active here yet (created by another replica)
                compiled = compile_trigger(await self._store.get_trigger(body.trigger_id))
            return compiled
        # TriggerValidationError answers exactly as the create route does.
        return TriggerCatalog.compile_definition(parse_definition(body.trigger))


def backtests_router(handlers: BacktestHandlers, auth: ApiAuth | None = None) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["backtests (extension)"], responses=ERROR_RESPONSES)
    _add = route_adder(auth)
    _add(
        router,
        "POST",
        "/backtests",
        handlers.start,
        "v2CreateBacktest",
        status_code=202,
        openapi_extra=start_body(BacktestBody),
        description="Extension: run a trigger (stored, or unsaved) over the events already in "
        "Kafka, outside the consumer group, and count what it would have done. Nothing is "
        "called, written or published. Answers at once; read it again for its progress.",
    )
    _add(
        router,
        "GET",
        "/backtests",
        handlers.list_recent,
        "v2ListBacktests",
        description="Extension: the running backtests of this replica and the finished ones "
        "still kept, newest first.",
    )
    _add(router, "GET", "/backtests/{backtestID}", handlers.read, "v2ReadBacktest")
    _add(
        router,
        "DELETE",
        "/backtests/{backtestID}",
        handlers.cancel,
        "v2CancelBacktest",
        description="Extension: stop a running backtest; answers it as it ended.",
    )
    return router
