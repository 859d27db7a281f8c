"""What the operator sees: `/metrics` after a known stream, the consumer lag, and the
consumer-joined readiness check.

The metric counters are read from a daemon running as its own process: prometheus-client's
registry is global per process, so counters from other tests in this one would add up. The
orchestration check of `/readyz` going 503 during an outage and 200 after it is covered by
`test_faults.py::test_an_orchestration_outage_pauses_work_and_every_event_succeeds_after_it`.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from trigger_daemon.adapters.kafka import KafkaConnection, KafkaSource
from trigger_daemon.core.triggers import yaml_trigger_id
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.processes import DaemonProcess
from trigger_daemon.devtools.stub_orchestration import StubOrchestration

from .conftest import committed_offset, produce_many, wait_until

TRIGGERS = [
    {
        "name": "book",
        "event": "COMMITTED_TRANSACTIONS",
        "workflowID": "book",
        "vars": {"txid": "to_string(event.transactions[0].id)"},
    },
    # The stub refuses this workflow with a 400: a permanent error, a failed occurrence.
    {"name": "escalate", "event": "SAVED_METADATA", "workflowID": "refused"},
    # abs() of a string raises: a filter error, and no match.
    {
        "name": "bad-filter",
        "event": "SAVED_PAYMENT",
        "workflowID": "book",
        "filter": "abs(event.status) > `1`",
    },
]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def known_stream() -> list[tuple[bytes | None, bytes]]:
    """17 records: 6 booked, 2 refused, 1 filter error, 4 matching nothing, 4 poison."""
    values = [
        *(events.encode(events.committed_transaction(n, 100 + n)) for n in range(6)),
        *(events.encode(events.saved_metadata(f"users:{n}", "required")) for n in range(2)),
        events.encode(events.saved_payment("SUCCEEDED", 500)),
        *(events.encode({"type": "DELETED_METADATA", "payload": {}}) for _ in range(4)),
        b"not json",
        b"{oops",
        b'{"payload": {}}',
        b"[1, 2]",
    ]
    return [(None, value) for value in values]


def samples(text: str) -> Samples:
    """Every sample by name and sorted labels, parsed as Prometheus would."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def by_label(found: Samples, name: str, label: str) -> dict[str, float]:
    """The samples of one labelled metric as {label value: value}."""
    return {
        dict(labels)[label]: value
        for (sample, labels), value in found.items()
        if sample == name and dict(labels).get(label) is not None
    }


async def test_metrics_count_what_a_known_stream_did(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    stream = known_stream()
    group = f"{topic}-group"
    stub.fail("refused", 400, error_message="workflow refused")
    daemon = DaemonProcess(
        tmp_path,
        {
            "kafka": {
                "bootstrap_servers": broker.bootstrap_servers,
                "topics": [topic],
                "group_id": group,
                "dead_letter_topic": f"{topic}-dead-letters",
            },
            "orchestration": {"base_url": stub.url},
            "store": {"url": f"sqlite:///{tmp_path}/store.db"},
            "triggers": TRIGGERS,
        },
    )
    try:
        daemon.start()
        await daemon.wait_ready()
        await produce_many(broker.bootstrap_servers, topic, stream)

        async def all_committed() -> bool:
            return await committed_offset(broker.bootstrap_servers, group, topic) == len(stream)

        await wait_until(all_committed, within_seconds=30, interval=0.2, what="the commit")
        async with httpx.AsyncClient(base_url=daemon.api_url) as api:
            found: Samples = {}

            async def settled() -> bool:
                # The in-flight gauge is set once per fetch: the next fetch brings it to 0.
                nonlocal found
                found = samples((await api.get("/metrics")).text)
                return found.get(("trigger_daemon_in_flight", ())) == 0

            await wait_until(settled, what="in_flight to reach 0", interval=0.1)
            ready = await api.get("/readyz")
    finally:
        daemon.stop_quietly()

    answered = [call.answered_status for call in stub.calls]
    assert sorted(answered) == [201] * 6 + [400] * 2
    assert by_label(found, "trigger_daemon_events_consumed_total", "topic") == {topic: 17}
    assert by_label(found, "trigger_daemon_events_matched_total", "event_type") == {
        "COMMITTED_TRANSACTIONS": 6,
        "SAVED_METADATA": 2,
    }
    assert by_label(found, "trigger_daemon_dead_letters_total", "reason") == {
        "not-json": 2,
        "missing-type": 1,
        "not-an-object": 1,
    }
    assert by_label(found, "trigger_daemon_filter_errors_total", "trigger_id") == {
        yaml_trigger_id("bad-filter"): 1
    }
    assert by_label(found, "trigger_daemon_workflow_calls_total", "outcome") == {
        "succeeded": answered.count(201),
        "permanent_error": answered.count(400),
    }
    assert found[("trigger_daemon_workflow_call_duration_seconds_count", ())] == 8
    assert by_label(found, "trigger_daemon_occurrences_total", "status") == {
        "succeeded": 6,
        "failed": 2,
    }
    lag = (("partition", "0"), ("topic", topic))
    assert found[("trigger_daemon_consumer_lag", lag)] == 0
    assert found[("process_cpu_seconds_total", ())] > 0  # the process and GC collectors
    assert any(name == "python_gc_collections_total" for name, _ in found)

    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"consumer": True, "store": True, "orchestration": True},
    }


def lag_of(topic: str, partition: int) -> float | None:
    """This process's consumer_lag sample; None when there is none."""
    labels = {"topic": topic, "partition": str(partition)}
    return REGISTRY.get_sample_value("trigger_daemon_consumer_lag", labels)


def source_for(broker: TansuBroker, topic: str, group: str, max_records: int = 500) -> KafkaSource:
    return KafkaSource(
        KafkaConnection(broker.bootstrap_servers),
        [topic],
        group,
        max_records=max_records,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )


async def test_lag_counts_records_not_yet_fetched_and_reaches_zero(
    broker: TansuBroker, topic: str
) -> None:
    await produce_many(broker.bootstrap_servers, topic, known_stream()[:10])
    async with source_for(broker, topic, f"{topic}-group", max_records=4) as source:
        first = await wait_for_records(source)
        assert lag_of(topic, 0) == 10 - first
        fetched = first
        while fetched < 10:
            fetched += await wait_for_records(source)
        assert lag_of(topic, 0) == 0
    assert lag_of(topic, 0) is None  # a stopped consumer leaves no stale value


async def wait_for_records(source: KafkaSource) -> int:
    for _ in range(50):
        batches = await source.fetch(0.2)
        if batches:
            return sum(len(records) for records in batches.values())
    raise AssertionError("no records fetched")


async def test_revoked_partitions_leave_no_lag_behind(broker: TansuBroker, topic: str) -> None:
    name = f"{topic}-two"
    await broker.create_topics([name], partitions=2)
    for partition in (0, 1):
        await produce_to(broker, name, partition, count=3)
    group = f"{name}-group"
    async with source_for(broker, name, group) as source:
        await wait_until(
            lambda: fetch_then(source, lambda: lag_of(name, 0) == 0 == lag_of(name, 1)),
            what="both partitions read",
        )
        # A second member joins (a plain consumer, so its lag is not in this registry):
        # each member keeps one partition.
        other = AIOKafkaConsumer(
            bootstrap_servers=broker.bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
        )
        other.subscribe([name])
        starting = asyncio.create_task(other.start())
        try:
            await wait_until(lambda: fetch_then(source, lambda: starting.done()), what="rebalance")
            await starting
            (theirs,) = other.assignment()
            await wait_until(
                lambda: fetch_then(source, lambda: lag_of(name, 1 - theirs.partition) == 0),
                what="a fetch after the rebalance",
            )
            assert lag_of(name, theirs.partition) is None
        finally:
            await other.stop()


async def fetch_then(source: KafkaSource, condition: Any) -> bool:
    await source.fetch(0.1)
    return bool(condition())


async def produce_to(broker: TansuBroker, topic: str, partition: int, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for _ in range(count):
            await producer.send_and_wait(topic, b"{}", partition=partition)
    finally:
        await producer.stop()


class _HoldRebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Keeps a rebalance from finishing while `release` is not set: the broker holds every
    member's join until this member has given its partitions up."""

    def __init__(self) -> None:
        self.assigned = asyncio.Event()
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:
            self.holding.set()
            await self.release.wait()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.assigned.set()


async def test_a_member_is_joined_only_once_the_group_took_it_even_with_no_partition(
    broker: TansuBroker, topic: str
) -> None:
    group = f"{topic}-group-{uuid.uuid4().hex[:6]}"
    first = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        # Member ids start with the client id and the range assignor gives the one partition
        # to the first id in order: this member keeps it, the source gets none.
        client_id="a-first-member",
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=500,
    )
    hold = _HoldRebalance()
    first.subscribe([topic], listener=hold)
    await first.start()
    try:
        await hold.assigned.wait()
        source = source_for(broker, topic, group)
        assert not source.joined()
        # aiokafka's start() waits for the first assignment; the held rebalance keeps it waiting.
        entering = asyncio.create_task(source.__aenter__())
        await asyncio.wait_for(hold.holding.wait(), 20)
        await asyncio.sleep(1)
        assert not source.joined()
        hold.release.set()
        await asyncio.wait_for(entering, 30)
        try:
            # One partition, two members: this one has none and has joined all the same.
            assert source.assigned() == set()
            assert source.joined()
        finally:
            await source.__aexit__(None, None, None)
    finally:
        hold.release.set()
        await first.stop()
