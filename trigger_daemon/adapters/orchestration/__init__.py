"""The Formance orchestration API: runWorkflow over httpx, with its authentication.

client     OrchestrationClient: one call, its answer classified into a CallAttempt
transport  httpx's transport over aiohttp's connection pool
"""

from trigger_daemon.adapters.orchestration.client import (
    BearerTokenAuth,
    ClientCredentialsAuth,
    OrchestrationClient,
)

__all__ = ["BearerTokenAuth", "ClientCredentialsAuth", "OrchestrationClient"]
