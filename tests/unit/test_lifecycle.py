"""The supervisor: one part dying stops the others gracefully and fails the daemon."""

from __future__ import annotations

import asyncio
import time

import pytest

from trigger_daemon.errors import PartFailed
from trigger_daemon.lifecycle import Part, supervise


class Recorder:
    """Parts that note how they ended."""

    def __init__(self) -> None:
        self.ended: dict[str, str] = {}

    def until_stopped(self, name: str, drain_seconds: float = 0.0) -> Part:
        async def run(stop: asyncio.Event) -> None:
            try:
                await stop.wait()
                await asyncio.sleep(drain_seconds)
                self.ended[name] = "graceful"
            except asyncio.CancelledError:
                self.ended[name] = "cancelled"
                raise

        return Part(name, run)

    def failing(self, name: str, after_seconds: float, error: Exception) -> Part:
        async def run(stop: asyncio.Event) -> None:
            await asyncio.sleep(after_seconds)
            self.ended[name] = "raised"
            raise error

        return Part(name, run)

    def returning(self, name: str, after_seconds: float, *, may_finish: bool) -> Part:
        async def run(stop: asyncio.Event) -> None:
            await asyncio.sleep(after_seconds)
            self.ended[name] = "returned"

        return Part(name, run, may_finish=may_finish)


async def test_stop_ends_every_part_gracefully_and_raises_nothing() -> None:
    parts = Recorder()
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    await supervise([parts.until_stopped("pipeline"), parts.until_stopped("api")], stop, 5)
    assert parts.ended == {"pipeline": "graceful", "api": "graceful"}


async def test_a_part_that_raises_stops_the_others_gracefully_then_fails_the_daemon() -> None:
    parts = Recorder()
    stop = asyncio.Event()
    error = RuntimeError("revision poll broke")
    with pytest.raises(PartFailed) as caught:
        await supervise(
            [
                parts.until_stopped("pipeline", drain_seconds=0.05),
                parts.failing("trigger refresh", 0.02, error),
            ],
            stop,
            5,
        )
    assert caught.value.part == "trigger refresh"
    assert caught.value.__cause__ is error
    assert "revision poll broke" in str(caught.value)
    assert parts.ended == {"trigger refresh": "raised", "pipeline": "graceful"}
    assert stop.is_set()  # the same path as SIGTERM


async def test_a_part_that_returns_on_its_own_is_a_failure() -> None:
    parts = Recorder()
    with pytest.raises(PartFailed, match="API server stopped unexpectedly"):
        await supervise(
            [
                parts.until_stopped("pipeline"),
                parts.returning("API server", 0.01, may_finish=False),
            ],
            asyncio.Event(),
            5,
        )
    assert parts.ended["pipeline"] == "graceful"


async def test_a_part_that_may_finish_ends_the_daemon_cleanly() -> None:
    parts = Recorder()
    await supervise(
        [parts.returning("pipeline", 0.01, may_finish=True), parts.until_stopped("watch")],
        asyncio.Event(),
        5,
    )
    assert parts.ended == {"pipeline": "returned", "watch": "graceful"}


async def test_a_part_still_draining_after_the_grace_period_is_cancelled() -> None:
    parts = Recorder()
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, stop.set)
    started = time.monotonic()
    await supervise(
        [parts.until_stopped("pipeline", drain_seconds=30), parts.until_stopped("api")],
        stop,
        grace_seconds=0.1,
    )
    assert time.monotonic() - started < 5
    assert parts.ended == {"pipeline": "cancelled", "api": "graceful"}


async def test_a_part_that_fails_while_draining_fails_the_daemon() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, stop.set)

    async def breaks_on_stop(stop: asyncio.Event) -> None:
        await stop.wait()
        raise ValueError("commit failed")

    with pytest.raises(PartFailed, match="commit failed"):
        await supervise([Part("pipeline", breaks_on_stop)], stop, 5)


async def test_cancelling_the_supervisor_cancels_every_part() -> None:
    parts = Recorder()
    supervisor = asyncio.create_task(
        supervise([parts.until_stopped("pipeline"), parts.until_stopped("api")], asyncio.Event(), 5)
    )
    await asyncio.sleep(0.02)
    supervisor.cancel()
    with pytest.raises(asyncio.CancelledError):
        await supervisor
    assert parts.ended == {"pipeline": "cancelled", "api": "cancelled"}
