"""Operator routes, served at the root only: liveness, readiness and Prometheus metrics.

`/healthz` answers whenever the event loop does. `/readyz` runs the readiness callback the
composition root passes (check name → passed) and answers 503 unless every check passed. Both
stay open whatever the API's authentication; `/metrics` needs `orchestration:read` when
`protect_metrics` is set.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from trigger_daemon.adapters.api import schemas
from trigger_daemon.adapters.api.auth import READ, ApiAuth, requires

# Each check's name, and None when it passes or the reason it fails.
ReadinessCheck = Callable[[], Awaitable[Mapping[str, str | None]]]

log = structlog.get_logger(__name__)


def health_router(readiness: ReadinessCheck | None, auth: ApiAuth | None = None) -> APIRouter:
    router = APIRouter(tags=["operations"])
    metrics_guard = [] if auth is None or not auth.protect_metrics else [requires(auth, READ)]
    metrics_errors: dict[int | str, dict[str, Any]] = (
        {"default": {"model": schemas.Error, "description": "Error"}} if metrics_guard else {}
    )

    @router.get("/healthz", operation_id="healthz")
    async def healthz() -> schemas.Health:
        return schemas.Health(status="ok")

    @router.get(
        "/readyz",
        operation_id="readyz",
        responses={503: {"model": schemas.Readiness, "description": "A check failed"}},
        response_model_exclude_none=True,
    )
    async def readyz(response: Response) -> schemas.Readiness:
        outcomes = await _run(readiness)
        reasons = {name: why for name, why in outcomes.items() if why is not None}
        if reasons:
            response.status_code = 503
        return schemas.Readiness(
            status="unavailable" if reasons else "ready",
            checks={name: why is None for name, why in outcomes.items()},
            reasons=reasons or None,
        )

    @router.get(
        "/metrics",
        operation_id="metrics",
        response_class=Response,
        dependencies=[Depends(guard) for guard in metrics_guard],
        responses=metrics_errors,
    )
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router


async def _run(readiness: ReadinessCheck | None) -> Mapping[str, str | None]:
    if readiness is None:
        return {}
    try:
        return await readiness()
    except Exception as exc:
        log.exception("api_readiness_check_failed")
        return {"readiness": f"the readiness check failed: {exc}"}
