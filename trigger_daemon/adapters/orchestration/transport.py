"""The orchestration client's HTTP engine: httpx's transport interface over aiohttp.

httpx stays the API the client is written against (auth flows, timeouts, its exceptions);
aiohttp moves the bytes, for much less CPU per request than httpx's own transport, whose cost
grows with the pool (bench/RESULTS.md).

One aiohttp session, opened on first use inside the running loop, keeps up to
`max_connections` keep-alive connections. Bodies are read whole inside the transport (the
answers are small), so the read timeout covers the body too. httpx's timeouts map onto
aiohttp's: `connect` → `sock_connect`, `read` → `sock_read`, `pool` → `connect` (waiting for
a pooled connection, connecting included); aiohttp has no write timeout. Proxies come from the
environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) as with httpx's default, resolved
once per scheme and host. aiohttp's errors become httpx's, as httpx's own transport maps
httpcore's (`_ERRORS`), so a caller sees the same exceptions whichever engine runs.
"""

from __future__ import annotations

import functools
import ssl
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import httpx

# Most specific first: the first match wins. Everything here is an httpx.TransportError, which
# callers treat as "the request may not have reached the server, or its answer was lost".
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.TimeoutException),
    (TimeoutError, httpx.TimeoutException),
    (aiohttp.ClientConnectorError, httpx.ConnectError),  # refused, DNS, TLS handshake
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # a malformed answer
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ClientConnectionError, httpx.NetworkError),  # reset, broken pipe
    (aiohttp.ClientError, httpx.TransportError),
)


@contextmanager
def _mapped_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _ERRORS:
            if isinstance(exc, source):
                message = str(exc) or type(exc).__name__
                raise target(message, request=request) from exc
        raise


@functools.lru_cache(maxsize=16)  # a client has one timeout setting: build its object once
def _timeout(
    pool: float | None, connect: float | None, read: float | None
) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, connect=pool, sock_connect=connect, sock_read=read)


def _headers(request: httpx.Request) -> list[tuple[str, str]]:
    """httpx's headers as aiohttp takes them; the body goes whole, so never chunked. aiohttp
    writes header values as UTF-8, so they are read as UTF-8 (latin-1 would send a non-ASCII
    value's bytes encoded twice)."""
    return [
        (name.decode("latin-1"), value.decode("utf-8", "replace"))
        for name, value in request.headers.raw
        if name.lower() != b"transfer-encoding"
    ]


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx requests sent by one aiohttp session of `max_connections` keep-alive connections."""

    def __init__(
        self,
        max_connections: int = 64,
        keepalive_seconds: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`ssl_context`: how servers are verified; by default, against the CAs httpx itself
        would trust (certifi's, or the SSL_CERT_FILE environment variable's)."""
        self._max_connections = max_connections
        self._keepalive_seconds = keepalive_seconds
        self._ssl = ssl_context or httpx.create_ssl_context()
        self._proxies = urllib.request.getproxies_environment()
        self._proxy_for: dict[tuple[str, str], str | None] = {}
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_seconds,
            ssl=self._ssl,
        )
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # httpx decodes the body by its Content-Encoding
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
        )

    def _proxy(self, url: httpx.URL) -> str | None:
        if not self._proxies:
            return None
        key = (url.scheme, url.host)
        if key not in self._proxy_for:
            proxy = self._proxies.get(url.scheme) or self._proxies.get("all")
            bypass = proxy and urllib.request.proxy_bypass(url.host)  # NO_PROXY
            self._proxy_for[key] = None if bypass else proxy
        return self._proxy_for[key]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._open()
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        with _mapped_errors(request):
            async with self._session.request(
                request.method,
                str(request.url),
                headers=_headers(request),
                data=body or None,
                allow_redirects=False,  # httpx follows redirects itself, when asked to
                proxy=self._proxy(request.url),
                timeout=_timeout(timeout.get("pool"), timeout.get("connect"), timeout.get("read")),
            ) as answer:
                content = await answer.read()
        # stream=, as httpx's own transport answers: content= would decode the body here and
        # again when the client reads it.
        return httpx.Response(
            answer.status,
            headers=answer.raw_headers,
            stream=httpx.ByteStream(content),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                # aiohttp reads the status line with "surrogateescape": its bytes as sent,
                # as httpx's own transport gives them (a strict encode raised on a latin-1
                # reason phrase, and the record was handled again and again).
                "reason_phrase": (answer.reason or "").encode("utf-8", "surrogateescape"),
            },
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
