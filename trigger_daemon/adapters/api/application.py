"""Assembles the FastAPI application from the routers, the error mapping and the operator routes."""

from __future__ import annotations

from fastapi import FastAPI

from trigger_daemon.adapters.api.auth import ApiAuth
from trigger_daemon.adapters.api.backfills import BackfillHandlers, backfills_router
from trigger_daemon.adapters.api.backtests import BacktestHandlers, backtests_router
from trigger_daemon.adapters.api.console import console_router
from trigger_daemon.adapters.api.error_mapping import install_error_handlers
from trigger_daemon.adapters.api.health import ReadinessCheck, health_router
from trigger_daemon.adapters.api.limits import DEFAULT_MAX_BODY_BYTES, BodyLimit
from trigger_daemon.adapters.api.operations import RetryOccurrence, TriggerHandlers
from trigger_daemon.adapters.api.routes import v1_router, v2_router
from trigger_daemon.adapters.api.status import StatusHandlers, status_router
from trigger_daemon.ports import Store
from trigger_daemon.triggers.catalog import TriggerCatalog

GATEWAY_PREFIX = "/api/orchestration"

_DESCRIPTION = (
    "The trigger endpoints of the Formance orchestration API, served by trigger-daemon. "
    f"Every v1 and v2 route is also served under `{GATEWAY_PREFIX}`, the path the Formance "
    "SDKs and gateway use. Errors carry `errorCode` VALIDATION, NOT_FOUND or INTERNAL."
)


def create_api(
    catalog: TriggerCatalog,
    store: Store,
    *,
    readiness: ReadinessCheck | None = None,
    version: str,
    auth: ApiAuth | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    retry_occurrence: RetryOccurrence | None = None,
    backtests: BacktestHandlers | None = None,
    backfills: BackfillHandlers | None = None,
    status: StatusHandlers | None = None,
) -> FastAPI:
    """The HTTP API over `catalog` (writes) and `store` (reads).

    `readiness` is awaited by `/readyz` and returns check name → passed; none means always ready.
    `auth` None serves every route to anyone (the configuration allows that on loopback only).
    `retry_occurrence` re-drives a failed occurrence; without it the retry route answers 404.
    `backtests` serves the backtest routes, `backfills` the backfill routes, `status` the
    console's status and occurrence-count routes; without them there are none. The console's
    page is served at `/ui/` either way.
    """
    app = FastAPI(title="trigger-daemon", version=version, description=_DESCRIPTION)
    handlers = TriggerHandlers(catalog, store, version, retry_occurrence)
    extensions = [] if backtests is None else [backtests_router(backtests, auth)]
    if backfills is not None:
        extensions.append(backfills_router(backfills, auth))
    if status is not None:
        extensions.append(status_router(status, auth))
    routers = (v1_router(handlers, auth), v2_router(handlers, auth), *extensions, console_router())
    for router in routers:
        app.include_router(router)
        app.include_router(router, prefix=GATEWAY_PREFIX, include_in_schema=False)
    app.include_router(health_router(readiness, auth))
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app
