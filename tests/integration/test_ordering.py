"""Key-ordered concurrency: a key's records reach the API in order, other keys overtake,
and commits never pass a record that has not finished."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from trigger_daemon.adapters.store import open_store
from trigger_daemon.app import Daemon
from trigger_daemon.core.occurrences import OccurrenceStatus
from trigger_daemon.core.triggers import yaml_trigger_id
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.processes import DaemonProcess
from trigger_daemon.devtools.stub_orchestration import StubOrchestration

from .conftest import committed_offset, daemon_settings, in_process, produce_many, wait_until

# Transactions into `slow:` accounts run a slow workflow; the others a fast one.
TRIGGERS = [
    {
        "name": "slow",
        "event": "COMMITTED_TRANSACTIONS",
        "filter": "starts_with(event.transactions[0].postings[0].destination, 'slow:')",
        "workflowID": "slow",
        "vars": {"txid": "to_string(event.transactions[0].id)"},
    },
    {
        "name": "fast",
        "event": "COMMITTED_TRANSACTIONS",
        "filter": "!starts_with(event.transactions[0].postings[0].destination, 'slow:')",
        "workflowID": "fast",
        "vars": {"txid": "to_string(event.transactions[0].id)"},
    },
]


def settings_for(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path, **pipeline: Any
) -> dict[str, Any]:
    return daemon_settings(
        broker,
        topic,
        stub.url,
        f"sqlite:///{tmp_path}/store.db",
        pipeline=pipeline,
        triggers=TRIGGERS,
    )


def transaction(tx_id: int, destination: str, key: str) -> tuple[bytes, bytes]:
    event = events.committed_transaction(tx_id, 100, destination=destination)
    return key.encode(), events.encode(event)


async def test_one_keys_records_arrive_in_order_while_other_keys_overtake(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    stub.workflow_delays["slow"] = 0.1
    # One partition: any concurrency here comes from keys, not partitions.
    records = [transaction(n, "slow:a", "account-a") for n in range(10)]
    records += [transaction(100 + n, f"users:{n}", f"account-{n}") for n in range(30)]
    await produce_many(broker.bootstrap_servers, topic, records)

    daemon = Daemon(in_process(settings_for(broker, stub, topic, tmp_path)))
    await asyncio.wait_for(daemon.run(asyncio.Event(), until_idle=True), timeout=60)

    order = [(call.workflow_id, int(call.body["txid"])) for call in stub.calls]
    slow = [txid for workflow, txid in order if workflow == "slow"]
    assert slow == list(range(10))  # in order, though each took 100 ms
    first_slow_done = order.index(("slow", 0))
    last_slow_done = order.index(("slow", 9))
    overtaking = [txid for workflow, txid in order[:last_slow_done] if workflow == "fast"]
    assert len(overtaking) == 30  # every later fast record finished before the slow key did
    assert first_slow_done > 0


async def test_an_ordering_key_expression_orders_by_the_events_own_field(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    stub.workflow_delays["slow"] = 0.05
    # No record keys at all; the expression picks the destination account as the key.
    records = [(None, transaction(n, "slow:a", "-")[1]) for n in range(8)]
    records += [(None, transaction(100 + n, f"users:{n}", "-")[1]) for n in range(20)]
    await produce_many(broker.bootstrap_servers, topic, records)

    settings = settings_for(
        broker,
        stub,
        topic,
        tmp_path,
        ordering_key="event.transactions[0].postings[0].destination",
    )
    daemon = Daemon(in_process(settings))
    await asyncio.wait_for(daemon.run(asyncio.Event(), until_idle=True), timeout=60)

    order = [(call.workflow_id, int(call.body["txid"])) for call in stub.calls]
    assert [txid for workflow, txid in order if workflow == "slow"] == list(range(8))
    last_slow = order.index(("slow", 7))
    assert len([1 for workflow, _ in order[:last_slow] if workflow == "fast"]) == 20


@pytest.mark.slow
async def test_a_kill_during_out_of_order_completion_loses_nothing(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    # Offset 0 is slow; offsets 1..40 (other keys) finish long before it.
    stub.workflow_delays["slow"] = 5.0
    records = [transaction(0, "slow:a", "account-a")]
    records += [transaction(n, f"users:{n}", f"account-{n}") for n in range(1, 41)]
    await produce_many(broker.bootstrap_servers, topic, records)
    settings = settings_for(broker, stub, topic, tmp_path)
    first = DaemonProcess(tmp_path, settings, "first")
    second = DaemonProcess(tmp_path, settings, "second")
    try:
        first.start()
        await wait_until(lambda: len(stub.calls) == 40, what="the fast records")
        await asyncio.sleep(0.5)  # several commit intervals pass while offset 0 is running
        group = f"{topic}-group"
        assert await committed_offset(broker.bootstrap_servers, group, topic) == 0
        first.kill()
        stub.workflow_delays.clear()
        second.start()
        await wait_until(
            lambda: any(call.workflow_id == "slow" for call in stub.calls),
            within_seconds=30,
            what="the slow record after the restart",
        )
        await wait_until(
            lambda: _committed_is(broker, group, topic, 41),
            within_seconds=30,
            what="the commit to reach the end",
            interval=0.5,
        )
    finally:
        first.stop_quietly()
        second.stop_quietly()
    store = await open_store(f"sqlite:///{tmp_path}/store.db")
    try:
        [slow] = await store.list_occurrences(yaml_trigger_id("slow"), limit=10)
    finally:
        await store.close()
    assert slow.status is OccurrenceStatus.SUCCEEDED


async def _committed_is(broker: TansuBroker, group: str, topic: str, offset: int) -> bool:
    return await committed_offset(broker.bootstrap_servers, group, topic) == offset
