"""The REST API: the trigger endpoints of the Formance orchestration API (v1 and v2), so the
official Formance SDKs work against the daemon unchanged, plus health, readiness and metrics.

    application    create_api(): the routers mounted at the root and under /api/orchestration
    auth           bearer tokens (static or JWT) and the Formance scopes each route needs
    limits         the request body cap
    routes         the v1 and v2 route tables, with Formance's operation ids
    operations     the operations, once each: read from the store, write through the catalog
    paging         v2 cursors (opaque, keyset) and the paging rule
    schemas        the response models: the one definition of the wire shape
    error_mapping  every failure → {"errorCode", "errorMessage"} with VALIDATION/NOT_FOUND/INTERNAL
    health         /healthz, /readyz, /metrics
    server         ApiServer and serving(): uvicorn inside the daemon's event loop
"""

from trigger_daemon.adapters.api.application import GATEWAY_PREFIX, create_api
from trigger_daemon.adapters.api.auth import (
    ApiAuth,
    Authenticator,
    JwksCache,
    JwtAuthenticator,
    StaticTokens,
)
from trigger_daemon.adapters.api.health import ReadinessCheck
from trigger_daemon.adapters.api.server import ApiServer, ApiServerStopped, serving

__all__ = [
    "GATEWAY_PREFIX",
    "ApiAuth",
    "ApiServer",
    "ApiServerStopped",
    "Authenticator",
    "JwksCache",
    "JwtAuthenticator",
    "ReadinessCheck",
    "StaticTokens",
    "create_api",
    "serving",
]
