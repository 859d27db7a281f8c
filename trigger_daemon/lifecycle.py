"""The process's life: one supervisor over the long-running parts, the signals that stop the
process or reload its triggers, and the grace period a stop gives the work in hand.

Every long-running part (the pipeline, the API server, the trigger watchers) runs under
`supervise`. A part that dies unexpectedly stops the daemon: the supervisor logs which part and
why, stops the others on the same graceful path as SIGTERM (in-flight records finish, offsets
are committed), then raises PartFailed so the process exits non-zero and its orchestrator
restarts it. A daemon that went on consuming with its API or trigger refresh dead would fail
silently.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from trigger_daemon.errors import PartFailed

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Part:
    """A long-running part: `run(stop)` works until `stop` is set, then returns.

    A part that returns while the daemon runs has failed, unless `may_finish`: then its end is
    the daemon's end (the pipeline in run-until-idle mode)."""

    name: str
    run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
    may_finish: bool = False


async def supervise(parts: Sequence[Part], stop: asyncio.Event, grace_seconds: float) -> None:
    """Run `parts` until `stop` is set or one of them ends; then stop them all gracefully.

    After `stop`, the parts get `grace_seconds` to return; those still running are cancelled.
    Cancelling loses nothing: uncommitted records are read again by whoever owns the partition
    next, and their pending occurrences retried with the same idempotency key.
    Raises PartFailed, after the others stopped, when a part failed.
    """
    tasks = {asyncio.create_task(part.run(stop), name=part.name): part for part in parts}
    stopping = asyncio.create_task(stop.wait(), name="stop-requested")
    failure: PartFailed | None = None
    try:
        done, _ = await asyncio.wait({*tasks, stopping}, return_when=asyncio.FIRST_COMPLETED)
        # Parts that returned because stop was set are judged with the others, below.
        stopped_by_request = stop.is_set()
        for task, part in tasks.items():
            if task in done and not stopped_by_request:
                verdict = _ended_early(part, task)
                failure = failure or verdict
        stop.set()
        running = {task for task in tasks if not task.done()}
        if running:
            _, late = await asyncio.wait(running, timeout=grace_seconds)
            if late:
                log.warning(
                    "daemon.grace_period_over",
                    grace_seconds=grace_seconds,
                    parts=sorted(task.get_name() for task in late),
                )
                for task in late:
                    task.cancel()
                await asyncio.wait(late)
        for task, part in tasks.items():
            if task not in done or stopped_by_request:
                verdict = _failed_while_stopping(part, task)
                failure = failure or verdict
    finally:
        stopping.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, stopping, return_exceptions=True)
    if failure is not None:
        raise failure


def _ended_early(part: Part, task: asyncio.Task[None]) -> PartFailed | None:
    """The verdict on a part that ended before anyone asked the daemon to stop."""
    error = None if task.cancelled() else task.exception()
    if error is None and part.may_finish and not task.cancelled():
        return None
    failure = PartFailed(part.name, error)
    log.error(
        "daemon.part_failed",
        part=part.name,
        error=str(failure),
        detail="stopping the other parts gracefully; the process exits non-zero",
        exc_info=error,
    )
    return failure


def _failed_while_stopping(part: Part, task: asyncio.Task[None]) -> PartFailed | None:
    if task.cancelled() or task.exception() is None:
        return None
    error = task.exception()
    log.error("daemon.part_failed", part=part.name, error=str(error), exc_info=error)
    return PartFailed(part.name, error)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_stop_signals(
    stop: asyncio.Event, signals: tuple[signal.Signals, ...] = STOP_SIGNALS
) -> None:
    """SIGTERM and Ctrl-C ask for a graceful stop; a second one is the operator insisting."""
    loop = asyncio.get_running_loop()

    def request_stop(signum: signal.Signals) -> None:
        if stop.is_set():
            log.warning("daemon.forced_exit", signal=signum.name)
            raise SystemExit(130)
        log.info("daemon.stopping", signal=signum.name)
        stop.set()

    for signum in signals:
        loop.add_signal_handler(signum, request_stop, signum)


def install_reload_signal(request_reload: Callable[[], None]) -> None:
    """SIGHUP re-reads the YAML triggers, as daemons conventionally do; without this handler
    its default action would end the process."""
    loop = asyncio.get_running_loop()

    def on_sighup() -> None:
        log.info("triggers.reload_requested", signal="SIGHUP")
        request_reload()

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
