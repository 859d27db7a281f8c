"""The Formance orchestration API: runWorkflow over httpx, with its authentication.

client      OrchestrationClient: one call, its answer turned into a CallAttempt
answers     what a runWorkflow answer means: the instance, or a transient or permanent failure
auth        BearerTokenAuth and ClientCredentialsAuth (OAuth2 client credentials), httpx auth flows
cookieless  httpx's AsyncClient keeping no cookies, for the client's hot path
transport   httpx's transport over aiohttp's connection pool
"""

from trigger_daemon.adapters.orchestration.auth import BearerTokenAuth, ClientCredentialsAuth
from trigger_daemon.adapters.orchestration.client import OrchestrationClient

__all__ = ["BearerTokenAuth", "ClientCredentialsAuth", "OrchestrationClient"]
