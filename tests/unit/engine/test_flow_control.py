"""FlowControl: rate limits and concurrency caps per trigger and daemon-wide, on fake time
for rates and on the real loop for concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from trigger_daemon.core.throttle import UNLIMITED, Limits
from trigger_daemon.core.triggers import Trigger, parse_definition
from trigger_daemon.engine.flow_control import FlowControl


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def trigger(trigger_id: str, **fields: Any) -> Trigger:
    definition = parse_definition({"event": "E", "workflowID": "wf", **fields})
    return Trigger(
        **definition.model_dump(), id=trigger_id, created_at=datetime(2026, 1, 1, tzinfo=UTC)
    )


def flow_on(time: FakeTime, daemon: Limits = UNLIMITED) -> FlowControl:
    return FlowControl(daemon, sleep=time.sleep, clock=lambda: time.now)


def sample(name: str, trigger_id: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, {"trigger_id": trigger_id, **labels})
    return 0.0 if value is None else value


async def start_times(flow: FlowControl, time: FakeTime, who: Trigger, count: int) -> list[float]:
    """When each of `count` requests, made one after another, was let through."""
    starts = []
    for _ in range(count):
        async with flow.request_slot(who):
            starts.append(time.now)
    return starts


async def test_a_rate_limited_trigger_is_paced_after_its_burst() -> None:
    time = FakeTime()
    paced = trigger("t-paced", rateLimit={"requestsPerUnit": 5, "unit": "second", "burst": 2})
    starts = await start_times(flow_on(time), time, paced, 6)
    assert starts == pytest.approx([0.0, 0.0, 0.2, 0.4, 0.6, 0.8])


async def test_a_trigger_without_limits_is_not_held() -> None:
    time = FakeTime()
    flow = flow_on(time)
    assert await start_times(flow, time, trigger("t-free"), 100) == [0.0] * 100


async def test_the_daemon_limit_spans_triggers_and_the_time_waited_is_counted() -> None:
    time = FakeTime()
    flow = flow_on(time, Limits(calls_per_second=10))
    a, b = trigger("t-daemon-a"), trigger("t-daemon-b")
    before = sample("trigger_daemon_throttled_seconds_total", "t-daemon-b")
    starts = [*await start_times(flow, time, a, 2), *await start_times(flow, time, b, 2)]
    assert starts == pytest.approx([0.0, 0.1, 0.2, 0.3])
    waited = sample("trigger_daemon_throttled_seconds_total", "t-daemon-b") - before
    assert waited == pytest.approx(0.2)


async def test_a_reloaded_trigger_gets_its_new_limits_at_once() -> None:
    time = FakeTime()
    flow = flow_on(time)
    slow = trigger("t-reloaded", rateLimit={"requestsPerUnit": 1, "unit": "hour"})
    assert await start_times(flow, time, slow, 2) == pytest.approx([0.0, 3600.0])
    fast = trigger("t-reloaded", rateLimit={"requestsPerUnit": 1, "unit": "second"})
    assert await start_times(flow, time, fast, 2) == pytest.approx([3600.0, 3601.0])
    assert sample("trigger_daemon_flow_limit", "t-reloaded", limit="calls_per_second") == 1.0


async def test_a_concurrency_cap_holds_requests_until_one_answers() -> None:
    flow = FlowControl()
    capped = trigger("t-capped", maxConcurrency=2)
    release = asyncio.Event()
    running = peak = 0

    async def request() -> None:
        nonlocal running, peak
        async with flow.request_slot(capped):
            running += 1
            peak = max(peak, running)
            assert sample("trigger_daemon_trigger_calls_in_flight", "t-capped") == running
            await release.wait()
            running -= 1

    tasks = [asyncio.create_task(request()) for _ in range(5)]
    await asyncio.sleep(0.05)
    assert running == 2
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert peak == 2
    assert sample("trigger_daemon_trigger_calls_in_flight", "t-capped") == 0


async def test_a_throttled_trigger_does_not_hold_back_another_or_a_daemon_slot() -> None:
    flow = FlowControl(Limits(max_concurrency=1))
    slow = trigger("t-slow", rateLimit={"requestsPerUnit": 1, "unit": "hour"})
    async with flow.request_slot(slow):
        pass  # its only token for an hour is spent
    waiting = asyncio.create_task(_enter(flow, slow))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    # The daemon's single slot is free for another trigger while `slow` waits for a token.
    async with asyncio.timeout(1):
        await _enter(flow, trigger("t-other"))
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert sample("trigger_daemon_trigger_calls_in_flight", "t-slow") == 0


async def _enter(flow: FlowControl, who: Trigger) -> None:
    async with flow.request_slot(who):
        pass
