"""The orchestration adapter: runWorkflow over HTTP, behind `ports.WorkflowApi`.

It owns the pooled httpx client and turns each call into a `CallAttempt`: what the answer
means is decided in `answers`, how the daemon authenticates in `auth`. Retrying is the
caller's decision (`trigger_daemon.engine.calls`). httpx errors are converted here, at the
boundary: nothing from httpx escapes `start_workflow` except cancellation. httpx runs over
aiohttp (`transport.AiohttpTransport`), which moves the bytes for less CPU than httpx's own
transport; a test may inject another transport. Each call is the daemon's hottest path, so
the client keeps no cookies (`cookieless`), parses each workflow's URL once, builds its
request directly, sends it straight through the transport when no auth flow must run, and
reads a failure's details only from failed answers (see `start_workflow`).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from types import TracebackType
from typing import Literal
from urllib.parse import quote

import httpx
import orjson

from trigger_daemon import __version__
from trigger_daemon.adapters.orchestration.answers import classify, failure
from trigger_daemon.adapters.orchestration.auth import BearerTokenAuth
from trigger_daemon.adapters.orchestration.cookieless import CookielessAsyncClient
from trigger_daemon.adapters.orchestration.transport import AiohttpTransport
from trigger_daemon.core.header_values import header_safe
from trigger_daemon.errors import ConfigError, CredentialsRefused, WorkflowCallError
from trigger_daemon.ports import CallAttempt

_MAX_CACHED_URLS = 4096  # workflow ids come from triggers: far fewer in practice
_HEADERS = (
    ("Accept", "application/json"),
    ("Content-Type", "application/json"),
    ("User-Agent", f"trigger-daemon/{__version__}"),
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
        ssl_cafile: str | None = None,
    ) -> None:
        """`ssl_cafile`: the CA certificates that verify the API and the token endpoint (a
        private CA), instead of the ones httpx trusts by default."""
        if httpx.URL(base_url).scheme not in ("http", "https"):
            raise ConfigError("orchestration.base_url must start with http:// or https://")
        if api_version not in ("v1", "v2"):
            raise ConfigError(f"orchestration.api_version must be v1 or v2, not {api_version!r}")
        self._base_url = base_url
        self._api_version = api_version
        self._prefix = base_url.rstrip("/") + ("/v2" if api_version == "v2" else "")
        self._transport = transport or AiohttpTransport(
            max_connections=max_connections, ssl_context=_verifying(ssl_cafile)
        )
        self._client = CookielessAsyncClient(
            auth=auth, timeout=timeout_seconds, transport=self._transport
        )
        # Without an auth flow to run (no credentials, or a static token), a call is a
        # prepared request sent straight through the transport: the client's send adds
        # auth, redirect and event-hook machinery such a call never uses.
        self._direct_headers: tuple[tuple[str, str], ...] | None = None
        if auth is None:
            self._direct_headers = _HEADERS
        elif isinstance(auth, BearerTokenAuth):
            self._direct_headers = (*_HEADERS, ("Authorization", auth.header))
        # Every request's first headers, as httpx would write them: Host, then the fixed ones
        # (with a static token's Authorization). Auth flows add their own to each request.
        self._first_headers = [
            (b"Host", httpx.URL(self._prefix).netloc),
            *((name.encode(), value.encode()) for name, value in self._direct_headers or _HEADERS),
        ]
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
        if not header_safe(idempotency_key):
            # No header can carry it (httpx refuses a line break), and without it the call
            # could run twice: the occurrence fails, saying why, rather than raise every time.
            return failure(
                workflow_id,
                f"the Idempotency-Key {idempotency_key!r} holds a control character, which no "
                "HTTP header can carry (it comes from the event's idempotency key)",
            )
        body = orjson.dumps(dict(variables))  # str to str: the bytes json writes
        # The key comes from the event and may hold any character: sent as UTF-8, as Go's
        # net/http (the orchestration API) reads it back.
        headers = [*self._first_headers, (b"Idempotency-Key", idempotency_key.encode())]
        if traceparent:
            headers.append((b"traceparent", traceparent.encode()))
        headers.append((b"Content-Length", b"%d" % len(body)))
        try:
            # Prepared here, headers and body whole (stream=, not content=): client.post()
            # would merge the client's defaults, cookies and query parameters into every
            # request, and content= would encode the body and build the headers twice (20 µs
            # a request against 4 µs). Nothing is left for httpx to add.
            request = httpx.Request(
                "POST",
                self._instances_url(workflow_id),
                headers=headers,
                stream=httpx.ByteStream(body),
                extensions=self._extensions,
            )
            if self._direct_headers is None:
                response = await self._client.send(request)
            else:
                response = await self._send_direct(request)
        except httpx.TransportError as exc:  # connection errors and timeouts
            return failure(workflow_id, _describe(exc), transient=True)
        except WorkflowCallError as exc:  # raised by an auth flow (token endpoint)
            refused = isinstance(exc, CredentialsRefused)
            return failure(
                workflow_id, str(exc), transient=exc.retriable, credentials_refused=refused
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # undecodable answer, bad URL
            return failure(workflow_id, _describe(exc))
        return _attempt(workflow_id, response)

    async def _send_direct(self, request: httpx.Request) -> httpx.Response:
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    def _instances_url(self, workflow_id: str) -> httpx.URL:
        """Parsed once per workflow: httpx parses a str URL on every request."""
        url = self._urls.get(workflow_id)
        if url is None:
            if len(self._urls) >= _MAX_CACHED_URLS:
                self._urls.clear()
            path = f"/workflows/{quote(workflow_id, safe='')}/instances"
            url = self._urls[workflow_id] = httpx.URL(self._prefix + path)
        return url


def _attempt(workflow_id: str, response: httpx.Response) -> CallAttempt:
    """The answer's classification. What only a failure's description needs (Retry-After, the
    reason phrase, the body's charset, which httpx parses with the email package) is read
    from failed answers only: a started workflow pays for none of it."""
    status = response.status_code
    if response.is_success:
        return classify(workflow_id, status, response.content)
    return classify(
        workflow_id,
        status,
        response.content,
        reason_phrase=response.reason_phrase,
        retry_after=response.headers.get("Retry-After"),
        encoding=response.encoding or "utf-8",
    )


def _verifying(cafile: str | None) -> ssl.SSLContext | None:
    """A context that verifies servers against `cafile` (hostnames checked); None: the
    default. A file that cannot be read stops the daemon at start, naming the setting."""
    if cafile is None:
        return None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"orchestration.ssl_cafile: cannot read {cafile}: {exc}") from None


def _describe(exc: Exception) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _redacted(url: str) -> str:
    parsed = httpx.URL(url)
    return str(parsed.copy_with(password="***")) if parsed.password else url
