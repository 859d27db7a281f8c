"""Rate limits and concurrency caps end to end: the daemon in-process, the real broker, the stub
orchestration API over HTTP, SQLite. A throttled event waits; it never fails."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from trigger_daemon.adapters.store import open_store
from trigger_daemon.app import Daemon
from trigger_daemon.core.occurrences import OccurrenceStatus
from trigger_daemon.core.triggers import yaml_trigger_id
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.stub_orchestration import StubCall, StubOrchestration

from .conftest import committed_offset, daemon_settings, in_process, produce_many, wait_until

TRIGGER = {
    "name": "paced",
    "event": "COMMITTED_TRANSACTIONS",
    "workflowID": "review",
    "vars": {"txid": "to_string(event.transactions[0].id)"},
}


async def run_until_idle(
    broker: TansuBroker,
    topic: str,
    stub: StubOrchestration,
    tmp_path: Path,
    trigger: dict[str, Any],
) -> list[OccurrenceStatus]:
    settings = daemon_settings(
        broker, topic, stub.url, f"sqlite:///{tmp_path}/store.db", triggers=[trigger]
    )
    await asyncio.wait_for(
        Daemon(in_process(settings)).run(asyncio.Event(), until_idle=True), timeout=60
    )
    store = await open_store(f"sqlite:///{tmp_path}/store.db")
    try:
        found = await store.list_occurrences(yaml_trigger_id(trigger["name"]), limit=1000)
    finally:
        await store.close()
    return [occurrence.status for occurrence in found]


async def publish(broker: TansuBroker, topic: str, count: int) -> None:
    """`count` matching events, each under its own key, so nothing orders them."""
    records = [
        (b"key-%d" % n, events.encode(events.committed_transaction(n, 100))) for n in range(count)
    ]
    await produce_many(broker.bootstrap_servers, topic, records)


async def test_a_burst_is_paced_by_the_rate_limit_and_every_event_runs(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    await publish(broker, topic, 200)
    paced = {**TRIGGER, "rateLimit": {"requestsPerUnit": 20, "unit": "second", "burst": 1}}

    statuses = await run_until_idle(broker, topic, stub, tmp_path, paced)

    assert statuses == [OccurrenceStatus.SUCCEEDED] * 200
    arrivals = sorted(call.received_at for call in stub.calls)
    assert len(arrivals) == 200  # one request each: waiting spent no attempt
    assert arrivals[-1] - arrivals[0] >= 9.0
    # At most 21 sent in any second (tests/unit/core/test_throttle.py proves it of the
    # bucket); seen at the stub, a request's time on the way varies, so the window is 50 ms
    # short of a second.
    assert busiest_window(arrivals, 0.95) <= 21
    # Burst 1: the k-th request is not sent before k/20 s after the first (50 ms of slack for
    # the time a request takes to reach the stub, which varies).
    for k, arrival in enumerate(arrivals):
        assert arrival - arrivals[0] >= k / 20 - 0.05, (k, arrival - arrivals[0])


async def test_a_throttled_trigger_does_not_delay_another_triggers_events(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    # Ten events for a trigger allowed two calls a second, ten for another, each on its own key.
    records = [
        (b"key-%d" % n, events.encode(events.committed_transaction(n, 100 if n < 10 else 200)))
        for n in range(20)
    ]
    await produce_many(broker.bootstrap_servers, topic, records)
    amount = "event.transactions[0].postings[0].amount"
    slow = {
        **TRIGGER,
        "name": "slow",
        "filter": f"{amount} == `100`",
        "rateLimit": {"requestsPerUnit": 2, "unit": "second"},
    }
    free = {**TRIGGER, "name": "free", "workflowID": "other", "filter": f"{amount} == `200`"}
    settings = daemon_settings(
        broker, topic, stub.url, f"sqlite:///{tmp_path}/store.db", triggers=[slow, free]
    )
    await asyncio.wait_for(
        Daemon(in_process(settings)).run(asyncio.Event(), until_idle=True), timeout=60
    )

    slow_calls = sorted(c.received_at for c in stub.calls if c.workflow_id == "review")
    free_calls = sorted(c.received_at for c in stub.calls if c.workflow_id == "other")
    assert (len(slow_calls), len(free_calls)) == (10, 10)
    assert slow_calls[-1] - slow_calls[0] >= 4.4  # 2 a second
    assert free_calls[-1] < slow_calls[5]  # all done before the slow trigger is half-way


def busiest_window(arrivals: list[float], seconds: float) -> int:
    """The most arrivals within any window of `seconds`."""
    busiest = start = 0
    for end, arrival in enumerate(arrivals):
        while arrival - arrivals[start] >= seconds:
            start += 1
        busiest = max(busiest, end - start + 1)
    return busiest


async def test_a_concurrency_cap_bounds_the_requests_in_flight(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    await publish(broker, topic, 8)
    stub.delay_seconds = 0.2
    capped = {**TRIGGER, "maxConcurrency": 2}

    statuses = await run_until_idle(broker, topic, stub, tmp_path, capped)

    assert statuses == [OccurrenceStatus.SUCCEEDED] * 8
    assert peak_in_flight(stub.calls) == 2


def peak_in_flight(calls: list[StubCall]) -> int:
    """The most requests the stub had in hand at once."""
    edges = sorted([(c.received_at, 1) for c in calls] + [(c.answered_at, -1) for c in calls])
    peak = running = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    return peak


async def test_shutdown_does_not_wait_for_throttled_records_and_they_run_after_a_restart(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    await publish(broker, topic, 3)
    hourly = {**TRIGGER, "rateLimit": {"requestsPerUnit": 1, "unit": "hour"}}
    store_url = f"sqlite:///{tmp_path}/store.db"
    settings = daemon_settings(
        broker, topic, stub.url, store_url, triggers=[hourly], shutdown_grace_seconds=1.0
    )
    stop = asyncio.Event()
    running = asyncio.create_task(Daemon(in_process(settings)).run(stop))
    await wait_until(lambda: stub.call_count == 1, what="the hour's one call")
    await asyncio.sleep(0.3)  # the other two are waiting for a token now

    stopped_at = asyncio.get_running_loop().time()
    stop.set()
    await asyncio.wait_for(running, timeout=10)
    assert asyncio.get_running_loop().time() - stopped_at < 3.0  # the grace period, not an hour
    group = settings["kafka"]["group_id"]
    assert await committed_offset(broker.bootstrap_servers, group, topic) == 1

    restarted = daemon_settings(broker, topic, stub.url, store_url, triggers=[TRIGGER])
    await asyncio.wait_for(
        Daemon(in_process(restarted)).run(asyncio.Event(), until_idle=True), timeout=60
    )
    keys = sorted(call.idempotency_key or "" for call in stub.calls)
    assert len(keys) == 3
    assert len(set(keys)) == 3  # the first was not called again
