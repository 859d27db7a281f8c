"""Serving the API inside the daemon's own event loop, with uvicorn.

The daemon owns SIGINT/SIGTERM and the logging configuration, so the embedded server installs
no signal handlers and leaves logging alone; it stops when the `serving` block exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import uvicorn
from starlette.types import ASGIApp

from trigger_daemon.errors import ConfigError, StartupError

# Answered without credentials or side effects.
_WARM_UP_PATH = "/healthz"


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """uvicorn serving one app inside the daemon's event loop, from `start` to `close`.

    `watch` is the server's part under the daemon's supervisor: it returns when the daemon
    stops and raises if the server ends on its own first. The server goes on answering while
    the rest of the daemon drains; `close` stops it last.
    """

    def __init__(self, app: ASGIApp, *, host: str, port: int, grace_seconds: int = 5) -> None:
        self._app, self._host, self._port = app, host, port
        self._server = _EmbeddedServer(
            uvicorn.Config(
                app,
                lifespan="off",
                ws="none",
                log_config=None,
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=grace_seconds,
            )
        )
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Listen and serve; returns the bound port (port 0 picks a free one)."""
        await _warm_up(self._app)
        self._socket = _listen(self._host, self._port)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the API server stopped while starting")
            await asyncio.sleep(0.01)
        return int(self._socket.getsockname()[1])

    async def watch(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; raises ApiServerStopped if the server ends before."""
        assert self._task is not None, "start() first"
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({self._task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not stop.is_set():
            error = None if self._task.cancelled() else self._task.exception()
            raise ApiServerStopped("the API server stopped serving") from error

    async def close(self) -> None:
        """Open requests get the grace period to finish, then are cancelled."""
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._task
        if self._socket is not None:
            self._socket.close()


async def _warm_up(app: ASGIApp) -> None:
    """FastAPI builds its routing tables at the first request, holding the event loop for
    ~70 ms on the benchmark machine: one request in-process before serving, so that no
    client, and no heartbeat behind it, waits for that."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://warm-up") as client:
        await client.get(_WARM_UP_PATH)


class ApiServerStopped(RuntimeError):
    """uvicorn's serve loop ended while the daemon still ran."""


@contextlib.asynccontextmanager
async def serving(
    app: ASGIApp, *, host: str, port: int, grace_seconds: int = 5
) -> AsyncIterator[int]:
    """Serve `app` until the block exits; yields the bound port (port 0 picks a free one)."""
    server = ApiServer(app, host=host, port=port, grace_seconds=grace_seconds)
    try:
        yield await server.start()
    finally:
        await server.close()


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket. Its protocol is set explicitly: asyncio turns Nagle off
    (TCP_NODELAY) only on sockets whose `proto` says TCP, and without that every answer
    waits ~40 ms for the client's delayed ACK."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"the API cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen()
    except OSError as exc:
        sock.close()
        raise StartupError(f"the API cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock
