"""How the daemon proves who it is to the orchestration API: httpx auth flows.

Two schemes: a static bearer token, and OAuth2 client credentials (the token fetched from the
token endpoint, cached until shortly before it expires, fetched again once when the API
refuses it). A token endpoint failure is a retriable `WorkflowCallError`, which the client
turns into a transient failed attempt. Neither scheme's repr shows a secret.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator, Generator

import httpx

from trigger_daemon.adapters.orchestration.answers import json_object
from trigger_daemon.core.header_values import header_safe
from trigger_daemon.errors import CredentialsRefused, WorkflowCallError

# A token is replaced this long before the server says it expires (at most half its
# lifetime), so a request never leaves with a token that dies on the way.
_EXPIRY_MARGIN_SECONDS = 30.0


class BearerTokenAuth(httpx.Auth):
    """A static `Authorization: Bearer` token."""

    def __init__(self, token: str) -> None:
        self.header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self.header
        yield request

    def __repr__(self) -> str:
        return "BearerTokenAuth(token='***')"


class ClientCredentialsAuth(httpx.Auth):
    """OAuth2 client credentials, with the secret sent in the form body.

    The token request is yielded from the auth flow, so it goes through the same client,
    transport and timeouts as the API call. The token is cached until shortly before it
    expires and fetched again once when the API answers 401; a lock makes concurrent calls
    share one fetch. A token endpoint failure raises a retriable `WorkflowCallError`.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scopes: list[str] | None = None,
    ) -> None:
        self._token_url = token_url
        self._client_id = client_id
        self._scopes = list(scopes or [])
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        }
        if self._scopes:
            self._form["scope"] = " ".join(self._scopes)
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"ClientCredentialsAuth(token_url={self._token_url!r}, "
            f"client_id={self._client_id!r}, scopes={self._scopes!r})"
        )

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise TypeError("ClientCredentialsAuth works with httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        rejected: str | None = None
        for _ in range(2):  # the first try, then one replay with a fresh token after a 401
            async with self._lock:
                if self._needs_token(rejected):
                    answer = yield self._token_request(request)
                    await self._accept(answer)
                token = self._token
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request
            if response.status_code != httpx.codes.UNAUTHORIZED:
                return
            rejected = token

    def _needs_token(self, rejected: str | None) -> bool:
        """True unless the cached token is alive and is not the one the API just refused
        (another call may already have replaced that one)."""
        return (
            self._token is None or self._token == rejected or time.monotonic() >= self._expires_at
        )

    def _token_request(self, request: httpx.Request) -> httpx.Request:
        return httpx.Request(
            "POST",
            self._token_url,
            data=self._form,
            headers={"Accept": "application/json"},
            extensions={"timeout": request.extensions.get("timeout", {})},
        )

    async def _accept(self, answer: httpx.Response) -> None:
        token, lifetime = read_token(answer.status_code, await answer.aread())
        self._token = token
        self._expires_at = (
            math.inf
            if lifetime is None
            else time.monotonic() + lifetime - min(_EXPIRY_MARGIN_SECONDS, lifetime / 2)
        )


# OAuth2 errors (RFC 6749 §5.2) that say our client, not the moment, is wrong.
_REFUSALS = frozenset({"invalid_client", "unauthorized_client", "invalid_grant", "invalid_scope"})


def read_token(status: int, body: bytes) -> tuple[str, float | None]:
    """The access token of a token endpoint's answer and its lifetime in seconds (None: until
    the API refuses it); a retriable `WorkflowCallError` when the answer holds no token."""
    succeeded = 200 <= status < 300
    parsed = json_object(body) or {}
    token = parsed.get("access_token")
    token = token.strip() if isinstance(token, str) else None
    # A token no header can carry would make every call raise: the answer holds none.
    if succeeded and token and header_safe(token):
        return token, _seconds(parsed.get("expires_in"))
    oauth_error = parsed.get("error")
    reason = f" ({oauth_error})" if isinstance(oauth_error, str) else ""
    if not succeeded:
        missing = ""
    elif token:
        missing = " with an access_token no HTTP header can carry"
    else:
        missing = " without an access_token"
    message = f"token endpoint answered HTTP {status}{missing}{reason}"
    if status in (401, 403) or oauth_error in _REFUSALS:
        raise CredentialsRefused(message, retriable=True)
    raise WorkflowCallError(message, retriable=True)


def _seconds(value: object) -> float | None:
    """`expires_in` as seconds, never negative; None when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
