"""Delivery guarantees when things break, with the daemon as a real process, the real
broker and the stub orchestration API over HTTP. Slow: marked, and run in CI too."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from trigger_daemon.adapters.store import open_store
from trigger_daemon.core.occurrences import Occurrence, OccurrenceStatus
from trigger_daemon.core.triggers import yaml_trigger_id
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.processes import DaemonProcess
from trigger_daemon.devtools.stub_orchestration import StubOrchestration

from .conftest import daemon_settings, produce_many, wait_until

pytestmark = pytest.mark.slow

TRIGGER = {
    "name": "every-transaction",
    "event": "COMMITTED_TRANSACTIONS",
    "workflowID": "book",
    "vars": {"txid": "to_string(event.transactions[0].id)"},
}
TRIGGER_ID = yaml_trigger_id("every-transaction")
PARTITIONS = 4


@pytest.fixture
async def stream_topic(broker: TansuBroker, topic: str) -> str:
    name = f"{topic}-stream"
    await broker.create_topics([name], partitions=PARTITIONS)
    return name


def config(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path, **extra: Any
) -> dict[str, Any]:
    settings = daemon_settings(
        broker,
        topic,
        stub.url,
        f"sqlite:///{tmp_path}/store.db",
        kafka={"session_timeout_ms": 3000},
        orchestration={
            "retry": {
                "max_attempts": 5,
                "initial_backoff_seconds": 0.05,
                "max_backoff_seconds": 0.5,
            },
        },
        pipeline={"max_in_flight": 64},
        shutdown_grace_seconds=10,
        triggers=[TRIGGER],
    )
    return settings | extra


def transactions(count: int, keys: int = 40) -> list[tuple[bytes | None, bytes]]:
    return [
        (f"account-{n % keys}".encode(), events.encode(events.committed_transaction(n, 1000 + n)))
        for n in range(count)
    ]


async def stored_occurrences(tmp_path: Path) -> list[Occurrence]:
    store = await open_store(f"sqlite:///{tmp_path}/store.db")
    try:
        return await store.list_occurrences(TRIGGER_ID, limit=1_000_000)
    finally:
        await store.close()


async def all_succeeded(tmp_path: Path, count: int) -> bool:
    rows = await stored_occurrences(tmp_path)
    return len(rows) == count and all(r.status is OccurrenceStatus.SUCCEEDED for r in rows)


async def until_all_succeeded(tmp_path: Path, count: int) -> None:
    await wait_until(
        lambda: all_succeeded(tmp_path, count),
        within_seconds=120,
        what="every occurrence to succeed",
        interval=0.5,
    )


def calls_per_key(stub: StubOrchestration) -> collections.Counter[str | None]:
    return collections.Counter(call.idempotency_key for call in stub.calls)


async def test_sigkill_mid_stream_then_restart_runs_every_pair_once(
    broker: TansuBroker, stub: StubOrchestration, stream_topic: str, tmp_path: Path
) -> None:
    count = 2000
    stub.delay_seconds = 0.003
    daemon = DaemonProcess(tmp_path, config(broker, stub, stream_topic, tmp_path), "first")
    second = DaemonProcess(tmp_path, config(broker, stub, stream_topic, tmp_path), "second")
    try:
        daemon.start()
        await daemon.wait_ready()
        await produce_many(broker.bootstrap_servers, stream_topic, transactions(count))
        await wait_until(lambda: len(stub.calls) >= count // 3, what="a third of the calls")
        daemon.kill()
        calls_at_kill = len(stub.calls)

        second.start()
        await until_all_succeeded(tmp_path, count)
    finally:
        daemon.stop_quietly()
        second.stop_quietly()

    rows = await stored_occurrences(tmp_path)
    assert len({row.event_id for row in rows}) == count
    per_key = calls_per_key(stub)
    assert len(per_key) == count
    duplicates = [key for key, seen in per_key.items() if seen > 1]
    assert max(per_key.values()) <= 2
    # Only pairs in flight at the kill (answer received, outcome not yet written) repeat:
    # at most the in-flight limit, and a handful in practice.
    assert len(duplicates) <= 64
    assert len(duplicates) < count * 0.02
    print(
        f"\ncrash: {count} events, kill after {calls_at_kill} calls, "
        f"{len(stub.calls)} calls in all, {len(duplicates)} pairs called twice"
    )


async def test_sigterm_finishes_in_flight_work_and_a_restart_repeats_no_call(
    broker: TansuBroker, stub: StubOrchestration, stream_topic: str, tmp_path: Path
) -> None:
    count = 1200
    stub.delay_seconds = 0.003
    settings = config(broker, stub, stream_topic, tmp_path)
    first = DaemonProcess(tmp_path, settings, "first")
    second = DaemonProcess(tmp_path, settings, "second")
    try:
        first.start()
        await first.wait_ready()
        await produce_many(broker.bootstrap_servers, stream_topic, transactions(count))
        await wait_until(lambda: len(stub.calls) >= count // 4, what="a quarter of the calls")
        started = time.monotonic()
        assert await first.terminate() == 0, first.tail()
        stopping_took = time.monotonic() - started
        assert first.events("daemon.stopped")
        assert not [line for line in first.log_lines() if line.get("level") == "error"]

        second.start()
        await until_all_succeeded(tmp_path, count)
    finally:
        first.stop_quietly()
        second.stop_quietly()
    per_key = calls_per_key(stub)
    assert len(per_key) == count
    assert max(per_key.values()) == 1  # what was in flight finished and was committed
    assert stopping_took < 10


async def test_a_member_joining_mid_stream_takes_partitions_without_duplicate_runs(
    broker: TansuBroker, stub: StubOrchestration, stream_topic: str, tmp_path: Path
) -> None:
    count = 200
    # Calls slower than a member's join: when the partitions move, the first member still
    # has calls in flight that the new owner would repeat if they were not drained first.
    stub.delay_seconds = 2.0
    settings = config(broker, stub, stream_topic, tmp_path)
    first = DaemonProcess(tmp_path, settings, "first")
    second = DaemonProcess(tmp_path, settings, "second")
    try:
        first.start()
        await first.wait_ready()
        await produce_many(broker.bootstrap_servers, stream_topic, transactions(count))
        await wait_until(lambda: len(stub.calls) >= 40, what="the first calls")
        second.start()  # the group rebalances while the first member is busy
        await until_all_succeeded(tmp_path, count)
        per_key = calls_per_key(stub)
        assert len(per_key) == count
        assert max(per_key.values()) == 1
        assert await first.terminate() == 0
        assert await second.terminate() == 0
    finally:
        first.stop_quietly()
        second.stop_quietly()
    assert second.events("occurrence.succeeded"), "the new member got no work"


async def test_an_orchestration_outage_pauses_work_and_every_event_succeeds_after_it(
    broker: TansuBroker, stub: StubOrchestration, stream_topic: str, tmp_path: Path
) -> None:
    count = 200
    # Without the circuit breaker this policy would fail every event within the outage.
    retry = {"max_attempts": 10, "initial_backoff_seconds": 0.2, "max_backoff_seconds": 1.0}
    settings = config(broker, stub, stream_topic, tmp_path)
    settings["orchestration"]["retry"] = retry
    daemon = DaemonProcess(tmp_path, settings)
    stub_port = int(stub.url.rsplit(":", 1)[1])
    try:
        daemon.start()
        await daemon.wait_ready()
        stub.fail(None, 503, error_message="gateway down")
        await produce_many(broker.bootstrap_servers, stream_topic, transactions(count))
        async with httpx.AsyncClient(base_url=daemon.api_url) as api:
            await wait_until(
                lambda: readiness(api, expect_ready=False), what="readiness to report the outage"
            )
            await asyncio.sleep(2)
            await stub.stop()  # and now connections are refused
            await asyncio.sleep(5)
            assert len({c.idempotency_key for c in stub.calls}) < count  # work paused
            await stub.start(port=stub_port)
            stub.heal()
            await wait_until(
                lambda: all_succeeded(tmp_path, count),
                within_seconds=90,
                what="every occurrence to succeed",
                interval=0.5,
            )
            await wait_until(lambda: readiness(api, expect_ready=True), what="ready again")
    finally:
        daemon.stop_quietly()
    assert not [
        r for r in await stored_occurrences(tmp_path) if r.status is not OccurrenceStatus.SUCCEEDED
    ]


async def readiness(api: httpx.AsyncClient, *, expect_ready: bool) -> bool:
    answer = await api.get("/readyz")
    checks = answer.json().get("checks", {})
    if expect_ready:
        return answer.status_code == 200
    return answer.status_code == 503 and checks.get("orchestration") is False


async def test_one_failing_workflow_among_good_ones_exhausts_its_policy_alone(
    broker: TansuBroker, stub: StubOrchestration, stream_topic: str, tmp_path: Path
) -> None:
    count = 100
    bad = {**TRIGGER, "name": "bad", "workflowID": "broken-workflow"}
    # Traffic that keeps succeeding until the test ends: the API is up, so the bad
    # workflow's failures are its own and spend its attempts.
    notes = {"name": "notes", "event": "SAVED_METADATA", "workflowID": "note"}
    settings = config(broker, stub, stream_topic, tmp_path, triggers=[TRIGGER, bad, notes])
    settings["orchestration"]["retry"] = {
        "max_attempts": 3,
        "initial_backoff_seconds": 0.05,
        "max_backoff_seconds": 0.2,
    }
    stub.fail("broken-workflow", 503, error_message="this workflow is broken")
    daemon = DaemonProcess(tmp_path, settings)
    started = time.monotonic()
    good_traffic = asyncio.create_task(steady_metadata_events(broker, stream_topic))
    try:
        daemon.start()
        await produce_many(broker.bootstrap_servers, stream_topic, transactions(count))
        await until_all_succeeded(tmp_path, count)
        store = await open_store(f"sqlite:///{tmp_path}/store.db")
        try:

            async def bad_all_failed() -> bool:
                rows = await store.list_occurrences(yaml_trigger_id("bad"), limit=1000)
                return len(rows) == count and all(r.status is OccurrenceStatus.FAILED for r in rows)

            await wait_until(bad_all_failed, within_seconds=60, interval=0.5, what="bad ones")
            bad_rows = await store.list_occurrences(yaml_trigger_id("bad"), limit=1000)
        finally:
            await store.close()
    finally:
        good_traffic.cancel()
        # Awaited, so its producer closes its connections inside this test's event loop.
        with contextlib.suppress(asyncio.CancelledError):
            await good_traffic
        daemon.stop_quietly()
    # Three spent attempts each; a failure with no success anywhere meanwhile spends nothing,
    # so a call may take a request or two more.
    assert all(3 <= row.attempts <= 6 for row in bad_rows), sorted(r.attempts for r in bad_rows)
    assert all("this workflow is broken" in (row.error or "") for row in bad_rows)
    # Each record waits for its own bad call's policy only (3 tries, ≤ 0.4 s of back-off),
    # with 40 keys side by side: nowhere near 100 events times the policy in sequence.
    assert time.monotonic() - started < 30


async def steady_metadata_events(broker: TansuBroker, topic: str) -> None:
    """A SAVED_METADATA event every 20 ms until cancelled."""
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=1)
    await producer.start()
    try:
        for n in itertools.count():
            event = events.saved_metadata(f"account-{n}", review="none")
            await producer.send(topic, events.encode(event), key=b"notes")
            await asyncio.sleep(0.02)
    finally:
        await producer.stop()


async def test_a_broker_outage_of_30_seconds_is_ridden_out(
    stub: StubOrchestration, tmp_path: Path
) -> None:
    count = 600
    stub.delay_seconds = 0.003
    with TansuBroker() as own_broker:  # frozen below: not the session's broker
        topic = "ledger-outage"
        await own_broker.create_topics([topic], partitions=PARTITIONS)
        daemon = DaemonProcess(tmp_path, config(own_broker, stub, topic, tmp_path))
        try:
            daemon.start()
            await daemon.wait_ready()
            await produce_many(own_broker.bootstrap_servers, topic, transactions(count))
            await wait_until(lambda: len(stub.calls) >= count // 3, what="a third of the calls")
            lines_before = len(daemon.log_lines())
            os.kill(own_broker.pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(30)
                assert daemon.returncode is None, daemon.tail()
                outage_lines = daemon.log_lines()[lines_before:]
            finally:
                os.kill(own_broker.pid, signal.SIGCONT)
            await until_all_succeeded(tmp_path, count)
            assert daemon.returncode is None
            await wait_until(lambda: bool(daemon.events("kafka.recovered")), what="recovered")
            recovered = daemon.events("kafka.recovered")
        finally:
            daemon.stop_quietly()
    per_key = calls_per_key(stub)
    assert len(per_key) == count
    assert max(per_key.values()) == 1
    # One line says the broker is gone (the client's own errors are not repeated), one that
    # it is back: not a storm of dozens of lines a second.
    complaints = [line["event"] for line in outage_lines if line["level"] in ("warning", "error")]
    assert complaints.count("kafka.unreachable") == 1
    assert len(complaints) < 20, complaints
    assert len(recovered) == 1
