"""BackgroundShare: full speed on an idle loop, a bounded share of a busy one."""

import asyncio
import time

import pytest

from trigger_daemon.engine.background import BackgroundShare


async def run_slices(busy_loop: bool) -> float:
    """Ten slices of 10 ms of (fake-clock) work; the real seconds they took with pauses."""
    now = [0.0]
    share = BackgroundShare(0.25, clock=lambda: now[0])

    async def another_task_with_work() -> None:
        while True:
            now[0] += 0.001
            await asyncio.sleep(0)

    other = asyncio.create_task(another_task_with_work()) if busy_loop else None
    started = time.perf_counter()
    for _ in range(10):
        now[0] += 0.010  # a slice of work
        await share.pause()
    elapsed = time.perf_counter() - started
    if other is not None:
        other.cancel()
        await asyncio.gather(other, return_exceptions=True)
    return elapsed


async def test_on_an_idle_loop_it_only_yields() -> None:
    assert await run_slices(busy_loop=False) < 0.05


async def test_on_a_busy_loop_it_rests_three_times_its_work_at_a_quarter_share() -> None:
    assert await run_slices(busy_loop=True) >= 10 * 0.030


def test_a_share_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ValueError, match="share"):
        BackgroundShare(0)
