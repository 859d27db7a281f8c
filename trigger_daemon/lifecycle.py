"""The process's life: SIGTERM and Ctrl-C stop it gracefully, SIGHUP reloads the triggers,
and a stop gives the work in hand a grace period before cancelling it.
Imports only the standard library and structlog."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)


async def run_with_grace(
    work: Coroutine[Any, Any, None], stop: asyncio.Event, grace_seconds: float
) -> None:
    """Await `work`; once `stop` is set, give it `grace_seconds` to finish, then cancel it.

    Cancelling loses nothing: uncommitted records are read again by whoever owns the
    partition next, and their pending occurrences retried with the same idempotency key.
    """
    task = asyncio.create_task(work, name="pipeline")
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            done, _ = await asyncio.wait({task}, timeout=grace_seconds)
            if not done:
                log.warning("daemon.grace_period_over", grace_seconds=grace_seconds)
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        stopping.cancel()
        task.cancel()


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and Ctrl-C ask for a graceful stop; a second one is the operator insisting."""
    loop = asyncio.get_running_loop()

    def request_stop(signum: signal.Signals) -> None:
        if stop.is_set():
            log.warning("daemon.forced_exit", signal=signum.name)
            raise SystemExit(130)
        log.info("daemon.stopping", signal=signum.name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop, signum)


def install_reload_signal(request_reload: Callable[[], None]) -> None:
    """SIGHUP re-reads the YAML triggers, as daemons conventionally do; without this handler
    its default action would end the process."""
    loop = asyncio.get_running_loop()

    def on_sighup() -> None:
        log.info("triggers.reload_requested", signal="SIGHUP")
        request_reload()

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
