"""Serving the API inside the daemon's own event loop, with uvicorn.

The daemon owns SIGINT/SIGTERM and the logging configuration, so the embedded server installs
no signal handlers and leaves logging alone; it stops when the `serving` block exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp

from trigger_daemon.errors import ConfigError


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(
    app: ASGIApp, *, host: str, port: int, grace_seconds: int = 5
) -> AsyncIterator[int]:
    """Serve `app` until the block exits; yields the bound port (port 0 picks a free one).

    On exit, open requests get `grace_seconds` to finish before they are cancelled.
    """
    sock = _listen(host, port)
    config = uvicorn.Config(
        app,
        lifespan="off",
        ws="none",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=grace_seconds,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the API server stopped while starting")
            await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


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
        raise ConfigError(f"the API cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock
