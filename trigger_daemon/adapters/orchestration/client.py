"""The orchestration adapter: runWorkflow over HTTP, behind `ports.WorkflowApi`.

It owns the pooled httpx client, the classification of one answer into a `CallAttempt`
(transient or permanent, with Retry-After), and the two auth schemes (a static bearer token,
OAuth2 client credentials). Retrying is the caller's decision (`trigger_daemon.engine.calls`).
httpx errors are converted here, at the boundary: nothing from httpx escapes
`start_workflow` except cancellation. httpx runs over aiohttp (`aiohttp_transport`, several
times less CPU per request than httpx's own transport); a test may inject another transport.
Each call is the daemon's hottest path, so the client keeps no cookies, parses each
workflow's URL once and builds its request directly (see `start_workflow`).

Imports only core/, ports, errors, the package version, httpx (over its aiohttp transport) and
orjson.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator, Generator, Mapping
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx
import orjson

from trigger_daemon import __version__
from trigger_daemon.adapters.orchestration.transport import AiohttpTransport
from trigger_daemon.core.retry import is_transient_status, parse_retry_after
from trigger_daemon.errors import ConfigError, WorkflowCallError
from trigger_daemon.ports import CallAttempt

_EXCERPT_CHARS = 200
_MAX_CACHED_URLS = 4096  # workflow ids come from triggers: far fewer in practice
_HEADERS = (
    ("Accept", "application/json"),
    ("Content-Type", "application/json"),
    ("User-Agent", f"trigger-daemon/{__version__}"),
)
# A token is replaced this long before the server says it expires (at most half its
# lifetime), so a request never leaves with a token that dies on the way.
_EXPIRY_MARGIN_SECONDS = 30.0


class BearerTokenAuth(httpx.Auth):
    """A static `Authorization: Bearer` token."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
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
        await answer.aread()
        token, lifetime = _read_token(answer)
        self._token = token
        self._expires_at = (
            math.inf
            if lifetime is None
            else time.monotonic() + lifetime - min(_EXPIRY_MARGIN_SECONDS, lifetime / 2)
        )


class OrchestrationClient:
    """Runs workflows on the Formance orchestration API over one pooled keep-alive client."""

    def __init__(
        self,
        base_url: str,
        api_version: Literal["v1", "v2"],
        auth: httpx.Auth | None,
        timeout_seconds: float,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 64,
    ) -> None:
        if httpx.URL(base_url).scheme not in ("http", "https"):
            raise ConfigError("orchestration.base_url must start with http:// or https://")
        if api_version not in ("v1", "v2"):
            raise ConfigError(f"orchestration.api_version must be v1 or v2, not {api_version!r}")
        self._base_url = base_url
        self._api_version = api_version
        self._prefix = base_url.rstrip("/") + ("/v2" if api_version == "v2" else "")
        self._client = _TokenClient(
            auth=auth,
            timeout=timeout_seconds,
            transport=transport or AiohttpTransport(max_connections=max_connections),
        )
        self._urls: dict[str, httpx.URL] = {}
        self._extensions = {"timeout": httpx.Timeout(timeout_seconds).as_dict()}

    def __repr__(self) -> str:
        return (
            f"OrchestrationClient(base_url={_redacted(self._base_url)!r}, "
            f"api_version={self._api_version!r}, auth={self._client.auth!r})"
        )

    async def __aenter__(self) -> OrchestrationClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def start_workflow(
        self,
        workflow_id: str,
        variables: Mapping[str, str],
        *,
        idempotency_key: str,
        traceparent: str | None = None,
    ) -> CallAttempt:
        """One request to start an instance of `workflow_id`."""
        headers = [*_HEADERS, ("Idempotency-Key", idempotency_key)]
        if traceparent:
            headers.append(("traceparent", traceparent))
        try:
            # Built here rather than by client.post(), which merges the client's default
            # headers, cookies and query parameters into every request: a tenth of its CPU.
            request = httpx.Request(
                "POST",
                self._instances_url(workflow_id),
                content=orjson.dumps(dict(variables)),  # str to str: the bytes json writes
                headers=headers,
                extensions=self._extensions,
            )
            response = await self._client.send(request)
        except httpx.TransportError as exc:  # connection errors and timeouts
            return _failure(workflow_id, _describe(exc), transient=True)
        except WorkflowCallError as exc:  # raised by an auth flow (token endpoint)
            return _failure(workflow_id, str(exc), transient=exc.retriable)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # undecodable answer, bad URL
            return _failure(workflow_id, _describe(exc))
        return _classify(workflow_id, response)

    def _instances_url(self, workflow_id: str) -> httpx.URL:
        """Parsed once per workflow: httpx parses a str URL on every request (~30 us)."""
        url = self._urls.get(workflow_id)
        if url is None:
            if len(self._urls) >= _MAX_CACHED_URLS:
                self._urls.clear()
            path = f"/workflows/{quote(workflow_id, safe='')}/instances"
            url = self._urls[workflow_id] = httpx.URL(self._prefix + path)
        return url


class _NoCookies(httpx.Cookies):
    """Cookies never kept: httpx reads every answer's Set-Cookie through urllib's cookie jar
    (about a tenth of a request's CPU), and the API is called with a token, never a session."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        return


class _TokenClient(httpx.AsyncClient):
    """httpx's client, keeping no cookies between requests (see _NoCookies)."""

    _no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        return


def _classify(workflow_id: str, response: httpx.Response) -> CallAttempt:
    status = response.status_code
    if response.is_success:
        instance = _instance(response)
        if instance is None:
            detail = f"HTTP {status}: the answer is not a JSON object"
            return _failure(workflow_id, detail, status)
        return CallAttempt(instance=instance, status_code=status)
    detail = f"HTTP {status}: {_reason(response)}"
    if not is_transient_status(status):
        return _failure(workflow_id, detail, status)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return _failure(workflow_id, detail, status, transient=True, retry_after=retry_after)


def _failure(
    workflow_id: str,
    detail: str,
    status: int | None = None,
    *,
    transient: bool = False,
    retry_after: float | None = None,
) -> CallAttempt:
    return CallAttempt(
        error=f"runWorkflow {workflow_id}: {detail}",
        status_code=status,
        transient=transient,
        retry_after=retry_after,
    )


def _instance(response: httpx.Response) -> dict[str, Any] | None:
    """The `data` object of a Formance answer, or the whole object when there is none."""
    body = _json_object(response)
    if body is None:
        return None
    data = body.get("data")
    return data if isinstance(data, dict) else body


def _reason(response: httpx.Response) -> str:
    """Formance's `errorMessage`, else the start of the body, else the reason phrase."""
    body = _json_object(response)
    message = body.get("errorMessage") if body else None
    if isinstance(message, str) and message:
        return message
    excerpt = " ".join(response.text.split())[:_EXCERPT_CHARS]
    return excerpt or response.reason_phrase


def _read_token(answer: httpx.Response) -> tuple[str, float | None]:
    """The access token and its lifetime in seconds (None: until the API refuses it)."""
    body = _json_object(answer) or {}
    token = body.get("access_token")
    if answer.is_success and isinstance(token, str) and token:
        return token, _seconds(body.get("expires_in"))
    oauth_error = body.get("error")
    reason = f" ({oauth_error})" if isinstance(oauth_error, str) else ""
    missing = " without an access_token" if answer.is_success else ""
    raise WorkflowCallError(
        f"token endpoint answered HTTP {answer.status_code}{missing}{reason}", retriable=True
    )


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:  # not JSON, or not UTF-8
        return None
    return body if isinstance(body, dict) else None


def _describe(exc: Exception) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _redacted(url: str) -> str:
    parsed = httpx.URL(url)
    return str(parsed.copy_with(password="***")) if parsed.password else url
