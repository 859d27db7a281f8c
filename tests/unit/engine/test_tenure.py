"""Tenure: work for a partition stops once it is being revoked, and a replica resuming from a
pause longer than its group session waits for the group's answer before it claims or calls.
Over the fakes, with the live pipeline and record handler."""

from __future__ import annotations

import asyncio
import time

import pytest

from trigger_daemon.core.circuit import CircuitBreaker
from trigger_daemon.core.events import decode
from trigger_daemon.core.occurrences import OccurrenceStatus
from trigger_daemon.core.retry import RetryPolicy
from trigger_daemon.engine.calls import WorkflowCaller
from trigger_daemon.engine.pipeline import Pipeline
from trigger_daemon.engine.records import RecordHandler
from trigger_daemon.engine.runner import OccurrenceRunner
from trigger_daemon.engine.tenure import PartitionLost, Tenure
from trigger_daemon.testing import (
    AmongGoodCalls,
    InMemoryStore,
    ListSource,
    RecordingDeadLetters,
    ScriptedWorkflowApi,
    transient,
)

from .builders import SETTLE, catalog_with, payment, record

PARTITION = ("payments", 0)
BACK_OFF = 0.3  # long enough to revoke the partition while a call waits to be retried


class PausableClock:
    """time.monotonic, plus the seconds a pretend SIGSTOP took."""

    def __init__(self) -> None:
        self.paused_for = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.paused_for


async def handler_over(
    store: InMemoryStore, api: ScriptedWorkflowApi, tenure: Tenure
) -> RecordHandler:
    policy = RetryPolicy(
        max_attempts=3, initial_backoff_seconds=BACK_OFF, max_backoff_seconds=BACK_OFF
    )
    breaker = CircuitBreaker()
    caller = WorkflowCaller(AmongGoodCalls(api, breaker), policy, breaker)
    catalog = await catalog_with(store, SETTLE)
    runner = OccurrenceRunner(store, caller)
    return RecordHandler(catalog, store, runner, RecordingDeadLetters()).holding(tenure)


async def watched_handler(
    store: InMemoryStore, api: ScriptedWorkflowApi, clock: PausableClock
) -> tuple[Tenure, RecordHandler]:
    """A handler whose tenure watches for pauses of more than 0.45 s (a 1 s session, 0.1 s
    heartbeats), then waits 1.1 s for the group's answer."""
    tenure = Tenure(session_timeout_seconds=1.0, heartbeat_interval_seconds=0.1, clock=clock)
    return tenure, await handler_over(store, api, tenure)


async def test_a_partition_is_held_until_it_is_being_revoked() -> None:
    tenure = Tenure()

    assert await tenure.holds(PARTITION)
    tenure.revoking.add(PARTITION)
    assert not await tenure.holds(PARTITION)
    assert await tenure.holds(("payments", 1))


async def test_a_retry_on_a_partition_being_revoked_is_not_sent_and_its_record_not_committed() -> (
    None
):
    store, api = InMemoryStore(), ScriptedWorkflowApi(transient())
    tenure = Tenure()
    source = ListSource([record(payment())])
    pipeline = Pipeline(source, await handler_over(store, api, tenure), tenure=tenure)
    stop = asyncio.Event()
    flow = asyncio.create_task(pipeline.run(stop))
    await asyncio.wait_for(api.requested.wait(), 5)  # failed: its retry waits out the back-off

    await asyncio.wait_for(source.revoke({PARTITION}), 5)
    stop.set()
    await asyncio.wait_for(flow, 5)

    assert len(api.requests) == 1  # the retry was given up, not sent
    assert source.committed == {}  # the next owner reads the record again
    [occurrence] = store.occurrences.values()
    assert occurrence.status is OccurrenceStatus.PENDING  # for the next owner to run


async def test_after_a_pause_a_record_waits_for_the_group_and_claims_nothing_once_revoked() -> None:
    clock, store, api = PausableClock(), InMemoryStore(), ScriptedWorkflowApi()
    tenure, handler = await watched_handler(store, api, clock)
    stop = asyncio.Event()
    watch = asyncio.create_task(tenure.watch(stop))
    await asyncio.sleep(0)

    clock.paused_for = 5.0  # resumed after 5 s, past the 1 s session
    delivered = record(payment())
    work = handler.triage(delivered, decode(delivered.value))
    assert work is not None
    handling = asyncio.create_task(handler.handle(work))
    await asyncio.sleep(0.5)
    assert not handling.done()  # waiting for the group's answer
    assert store.occurrences == {}  # and nothing claimed meanwhile
    tenure.revoking.add(PARTITION)  # the answer: the partition was given to another replica

    with pytest.raises(PartitionLost):
        await asyncio.wait_for(handling, 5)
    stop.set()
    await watch
    assert (store.occurrences, api.requests) == ({}, [])


async def test_after_a_pause_that_kept_the_partition_a_record_goes_on_once_the_group_answered() -> (
    None
):
    clock, store, api = PausableClock(), InMemoryStore(), ScriptedWorkflowApi()
    tenure, handler = await watched_handler(store, api, clock)
    stop = asyncio.Event()
    watch = asyncio.create_task(tenure.watch(stop))
    await asyncio.sleep(0.3)  # the watch ticked once, in time

    clock.paused_for = 5.0
    await asyncio.sleep(0.3)  # the watch noticed the pause at its next tick
    delivered = record(payment())
    work = handler.triage(delivered, decode(delivered.value))
    assert work is not None
    started = time.monotonic()
    [occurrence] = await asyncio.wait_for(handler.handle(work), 5)
    stop.set()
    await watch

    assert time.monotonic() - started >= 0.5  # what was left of the 1.1 s wait
    assert occurrence.status is OccurrenceStatus.SUCCEEDED
    assert len(api.requests) == 1


async def test_a_late_tick_shorter_than_the_pause_threshold_holds_nothing_up() -> None:
    clock = PausableClock()
    tenure = Tenure(session_timeout_seconds=10.0, heartbeat_interval_seconds=3.0, clock=clock)
    stop = asyncio.Event()
    watch = asyncio.create_task(tenure.watch(stop))
    await asyncio.sleep(0)

    clock.paused_for = 3.0  # under half of the 7 s margin: the session cannot be lost
    started = time.monotonic()
    assert await tenure.holds(PARTITION)
    waited = time.monotonic() - started
    stop.set()
    await watch

    assert waited < 0.1
