"""Delivery rules record by record, in-process, on the real broker, stub API and SQLite.

Here the pipeline is assembled by hand so a test can put a failing wrapper around one real
part (the store, the dead-letter sink) and watch the rest react.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiokafka import AIOKafkaProducer

from trigger_daemon.adapters.kafka import (
    KafkaConnection,
    KafkaDeadLetters,
    KafkaOutcomeEvents,
    KafkaPublisher,
    KafkaSource,
)
from trigger_daemon.adapters.orchestration import OrchestrationClient
from trigger_daemon.adapters.store import SqlStore, open_store
from trigger_daemon.core.circuit import CircuitBreaker
from trigger_daemon.core.occurrences import Occurrence, OccurrenceStatus, Outcome
from trigger_daemon.core.retry import RetryPolicy
from trigger_daemon.core.triggers import parse_definition
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.postgres import PostgresCluster
from trigger_daemon.devtools.stub_orchestration import StubOrchestration
from trigger_daemon.engine.calls import WorkflowCaller
from trigger_daemon.engine.pipeline import Pipeline
from trigger_daemon.engine.records import RecordHandler
from trigger_daemon.engine.runner import OccurrenceRunner
from trigger_daemon.errors import BrokerError, StoreError
from trigger_daemon.ports import DeadLetter, DeadLetterSink, OutcomeSink, Store
from trigger_daemon.testing import AmongGoodCalls
from trigger_daemon.triggers.catalog import TriggerCatalog

from .conftest import committed_offset, produce, read_all, wait_until

TRIGGER = {
    "name": "payment-succeeded",
    "event": "SAVED_PAYMENT",
    "filter": "event.status == 'SUCCEEDED'",
    "workflowID": "settle",
    "vars": {"payment": "event.id"},
}


async def run_pipeline(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    store: Store,
    *,
    dead_letters: DeadLetterSink | None = None,
    outcome_events: OutcomeSink | None = None,
    dead_letter_topic: str | None = None,
    triggers: Sequence[dict[str, Any]] = (TRIGGER,),
) -> None:
    """Consume `topic` until every record is handled, with the given parts."""
    connection = KafkaConnection(broker.bootstrap_servers)
    catalog = TriggerCatalog(store)
    await catalog.reconcile_yaml([parse_definition(t) for t in triggers])
    policy = RetryPolicy(max_attempts=2, initial_backoff_seconds=0.01, max_backoff_seconds=0.05)
    async with (
        OrchestrationClient(stub.url, "v2", None, 5.0) as api,
        KafkaPublisher(connection) as publisher,
        KafkaSource(
            connection,
            [topic],
            f"{topic}-group",
            session_timeout_ms=2000,
            heartbeat_interval_ms=500,
        ) as source,
    ):
        if dead_letters is None and dead_letter_topic is not None:
            dead_letters = KafkaDeadLetters(publisher, dead_letter_topic)
        # The API is up for other calls: a transient failure here is the workflow's own and
        # spends an attempt (outages are test_faults.py's).
        breaker = CircuitBreaker()
        caller = WorkflowCaller(AmongGoodCalls(api, breaker), policy, breaker)
        runner = OccurrenceRunner(store, caller, outcome_events)
        handler = RecordHandler(catalog, store, runner, dead_letters or NoDeadLetters())
        await asyncio.wait_for(
            Pipeline(source, handler).run(asyncio.Event(), until_idle=True), timeout=60
        )


class NoDeadLetters:
    async def publish(self, letter: DeadLetter) -> None:
        raise AssertionError(f"unexpected dead letter: {letter.reason} {letter.detail}")


def payment(status: str = "SUCCEEDED") -> bytes:
    return events.encode(events.saved_payment(status, 1000))


async def test_every_kind_of_poison_is_dead_lettered_and_the_next_record_still_runs(
    broker: TansuBroker, stub: StubOrchestration, topic: str, store: SqlStore
) -> None:
    dlq = f"{topic}-dlq"
    await broker.create_topics([dlq])
    big_unmatched = json.dumps(
        {"type": "SAVED_ACCOUNT", "payload": {"blob": "x" * 900_000}}
    ).encode()
    poison = [
        (b"not json at all", "not-json"),
        (b"[1, 2, 3]", "not-an-object"),
        (b'{"payload": {}}', "missing-type"),
        (b'{"type": 42, "payload": {}}', "missing-type"),
        (b'{"type": "SAVED_PAYMENT", "payload": "text"}', "payload-not-an-object"),
        (b'{"type": "SAVED_PAYMENT", "payload": {"id": "\xff\xfe"}}', "not-utf8"),
    ]
    values = [value for value, _ in poison] + [big_unmatched, payment()]
    await produce(broker.bootstrap_servers, topic, values)

    await run_pipeline(broker, stub, topic, store, dead_letter_topic=dlq)

    letters = await read_all(broker.bootstrap_servers, dlq, expected=len(poison))
    assert [dict(letter.headers)["dead-letter-reason"].decode() for letter in letters] == [
        reason for _, reason in poison
    ]
    assert [letter.value for letter in letters] == [value for value, _ in poison]
    assert [dict(letter.headers)["dead-letter-source-offset"] for letter in letters] == [
        str(offset).encode() for offset in range(len(poison))
    ]
    # The 900 kB event matches no trigger: skipped and committed, not dead-lettered.
    assert len(stub.calls) == 1
    assert await committed_offset(broker.bootstrap_servers, f"{topic}-group", topic) == len(values)


async def test_a_record_too_large_to_dead_letter_whole_goes_out_without_its_value(
    broker: TansuBroker, stub: StubOrchestration, topic: str, store: SqlStore
) -> None:
    # Larger than the producer's request limit (4 MB): the letter that keeps it is refused on
    # every try, as a record near a broker's message limit is once the headers are added.
    dlq = f"{topic}-dlq"
    await broker.create_topics([dlq])
    huge = b"<" + b"x" * 5_000_000
    headers = [("origin", b"ledger")]
    await produce(
        broker.bootstrap_servers, topic, [huge], headers, key=b"k1", max_request_size=8_000_000
    )
    await produce(broker.bootstrap_servers, topic, [payment()])

    await run_pipeline(broker, stub, topic, store, dead_letter_topic=dlq)

    [letter] = await read_all(broker.bootstrap_servers, dlq, expected=1)
    assert (letter.value, letter.key) == (b"", b"k1")
    written = dict(letter.headers)
    assert "origin" not in written
    assert written["dead-letter-reason"] == b"not-json"
    assert written["dead-letter-source-offset"] == b"0"
    assert written["dead-letter-omitted"].startswith(
        b"the record's value (5000001 bytes) and its 1 headers: "
    )
    assert len(stub.calls) == 1  # the record behind it ran
    assert await committed_offset(broker.bootstrap_servers, f"{topic}-group", topic) == 2


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_records_compressed_with_any_kafka_codec_are_read(
    broker: TansuBroker, stub: StubOrchestration, topic: str, store: SqlStore, codec: str
) -> None:
    # Without the codec's library the fetch failed every time: the topic could not be read.
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, compression_type=codec)
    await producer.start()
    try:
        await producer.send_and_wait(topic, payment())
    finally:
        await producer.stop()

    await run_pipeline(broker, stub, topic, store)

    assert len(stub.calls) == 1
    assert await committed_offset(broker.bootstrap_servers, f"{topic}-group", topic) == 1


class FlakyDeadLetters:
    """The real sink, failing its first `failures` publishes."""

    def __init__(self, sink: DeadLetterSink, failures: int) -> None:
        self._sink = sink
        self.failures_left = failures
        self.published = 0

    async def publish(self, letter: DeadLetter) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise BrokerError("injected: broker unavailable", retriable=True)
        await self._sink.publish(letter)
        self.published += 1


async def test_a_dead_letter_that_fails_to_publish_is_retried_not_dropped(
    broker: TansuBroker, stub: StubOrchestration, topic: str, store: SqlStore
) -> None:
    dlq = f"{topic}-dlq"
    await broker.create_topics([dlq])
    await produce(broker.bootstrap_servers, topic, [b"{broken", payment()])
    async with KafkaPublisher(KafkaConnection(broker.bootstrap_servers)) as publisher:
        flaky = FlakyDeadLetters(KafkaDeadLetters(publisher, dlq), failures=2)
        await run_pipeline(broker, stub, topic, store, dead_letters=flaky)
    assert flaky.failures_left == 0
    assert flaky.published == 1
    assert len(await read_all(broker.bootstrap_servers, dlq, expected=1)) == 1
    assert len(stub.calls) == 1  # the record behind it ran once the letter was out


class FailingOutcomeWrites:
    """The real store, whose outcome writes fail until `healed` is set."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self.healed = asyncio.Event()
        self.failed_writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def finish_occurrence(self, occurrence: Occurrence, outcome: Outcome) -> Any:
        if not self.healed.is_set():
            self.failed_writes += 1
            raise StoreError("injected: disk full", retriable=True)
        return await self._store.finish_occurrence(occurrence, outcome)


async def test_a_failed_outcome_write_holds_the_offset_and_is_retried_without_a_new_call(
    broker: TansuBroker, stub: StubOrchestration, topic: str, store: SqlStore
) -> None:
    await produce(broker.bootstrap_servers, topic, [payment()])
    failing = FailingOutcomeWrites(store)
    with structlog.testing.capture_logs() as logs:
        running = asyncio.create_task(run_pipeline(broker, stub, topic, failing))
        await wait_until(lambda: failing.failed_writes >= 2, what="two failed writes")
        assert await committed_offset(broker.bootstrap_servers, f"{topic}-group", topic) == 0
        assert not [log for log in logs if log["event"] == "occurrence.succeeded"]
        failing.healed.set()
        await running

    [occurrence] = await store.list_occurrences((await store.list_triggers())[0].id, limit=10)
    assert occurrence.status is OccurrenceStatus.SUCCEEDED
    # The answer was kept while the write was retried: the API was asked once.
    assert [call.idempotency_key for call in stub.calls] == [occurrence.idempotency_key]
    assert failing.failed_writes >= 2
    assert [log["event"] for log in logs].count("occurrence.write_failed_will_retry") >= 2
    assert [log["event"] for log in logs].count("occurrence.succeeded") == 1
    assert await committed_offset(broker.bootstrap_servers, f"{topic}-group", topic) == 1


@pytest.fixture(params=["sqlite", "postgresql"])
async def either_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    """An empty store on SQLite, then on PostgreSQL (each backend refuses other things)."""
    if request.param == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        url = cluster.new_database()
    else:
        url = f"sqlite:///{tmp_path / 'store.db'}"
    store = await open_store(url)
    try:
        yield store
    finally:
        await store.close()


@pytest.mark.parametrize("character", ["\x00", "\udc00"], ids=["nul", "lone-surrogate"])
async def test_an_api_error_holding_what_no_store_keeps_is_recorded_and_the_record_committed(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    either_store: SqlStore,
    character: str,
) -> None:
    # The outcome write used to fail on every try (PostgreSQL stores no NUL; no UTF-8 encoder
    # writes a lone surrogate), and the record was never finished nor committed.
    store = either_store
    stub.fail("settle", 400, error_message=f"no{character}such workflow")
    await produce(broker.bootstrap_servers, topic, [payment()])

    await run_pipeline(broker, stub, topic, store)

    [occurrence] = await store.list_occurrences((await store.list_triggers())[0].id, limit=10)
    assert occurrence.status is OccurrenceStatus.FAILED
    assert occurrence.error == "runWorkflow settle: HTTP 400: no\ufffdsuch workflow"
    assert len(stub.calls) == 1
    assert await committed_offset(broker.bootstrap_servers, f"{topic}-group", topic) == 1


async def test_an_event_whose_idempotency_key_is_too_long_to_index_runs_under_its_digest(
    broker: TansuBroker, stub: StubOrchestration, topic: str, either_store: SqlStore
) -> None:
    # PostgreSQL refused the occurrence's index entry (over 2,704 bytes) on every try, and the
    # record was never finished nor committed. Random text: a repeated one would compress.
    store = either_store
    key = secrets.token_hex(1500)
    event = {**events.saved_payment("SUCCEEDED", 1000), "idempotencyKey": key}
    await produce(broker.bootstrap_servers, topic, [events.encode(event), events.encode(event)])

    await run_pipeline(broker, stub, topic, store)

    [trigger] = await store.list_triggers()
    [occurrence] = await store.list_occurrences(trigger.id, limit=10)
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert occurrence.event_id == f"SAVED_PAYMENT:sha256:{digest}"
    assert occurrence.status is OccurrenceStatus.SUCCEEDED
    # Delivered twice, run once, with the digest in the call's Idempotency-Key.
    assert [call.idempotency_key for call in stub.calls] == [f"{trigger.id}:{occurrence.event_id}"]
    assert await committed_offset(broker.bootstrap_servers, f"{topic}-group", topic) == 2


async def test_outcome_events_are_published_as_formance_orchestration_events(
    broker: TansuBroker, stub: StubOrchestration, topic: str, store: SqlStore
) -> None:
    events_topic = f"{topic}-events"
    await broker.create_topics([events_topic])
    stub.fail("broken", 404, error_message="no such workflow")
    broken = {**TRIGGER, "name": "broken", "workflowID": "broken"}
    await produce(broker.bootstrap_servers, topic, [payment()])
    async with KafkaPublisher(KafkaConnection(broker.bootstrap_servers)) as publisher:
        await run_pipeline(
            broker,
            stub,
            topic,
            store,
            outcome_events=KafkaOutcomeEvents(publisher, events_topic),
            triggers=[TRIGGER, broken],
        )
    published = [
        json.loads(record.value)
        for record in await read_all(broker.bootstrap_servers, events_topic, expected=2)
    ]
    by_type = {event["type"]: event for event in published}
    assert set(by_type) == {"SUCCEEDED_TRIGGER", "FAILED_TRIGGER"}
    for event in published:
        assert event["app"] == "orchestration"
        assert event["version"] == "v2"
        assert event["date"].endswith("Z")
    succeeded = by_type["SUCCEEDED_TRIGGER"]["payload"]
    assert set(succeeded) == {"id", "triggerID", "workflowInstanceID"}
    assert succeeded["workflowInstanceID"]
    failed = by_type["FAILED_TRIGGER"]["payload"]
    assert set(failed) == {"id", "triggerID", "error"}
    assert "no such workflow" in failed["error"]
    stored = await store.get_occurrence(succeeded["id"])
    assert stored.workflow_instance_id == succeeded["workflowInstanceID"]


async def test_a_failure_event_too_large_for_the_topic_goes_out_with_its_error_cut(
    broker: TansuBroker, stub: StubOrchestration, topic: str, store: SqlStore
) -> None:
    # An API's error message of 5 MB: the FAILED_TRIGGER event carrying it was refused by the
    # producer (4 MB) on every try, and each try called the API again.
    events_topic = f"{topic}-events"
    await broker.create_topics([events_topic])
    message = "no such workflow " + "x" * 5_000_000
    stub.fail("settle", 400, error_message=message)
    await produce(broker.bootstrap_servers, topic, [payment()])
    async with KafkaPublisher(KafkaConnection(broker.bootstrap_servers)) as publisher:
        events = KafkaOutcomeEvents(publisher, events_topic)
        await run_pipeline(broker, stub, topic, store, outcome_events=events)

    [record] = await read_all(broker.bootstrap_servers, events_topic, expected=1)
    event = json.loads(record.value)
    assert event["type"] == "FAILED_TRIGGER"
    whole = f"runWorkflow settle: HTTP 400: {message}"
    error = event["payload"]["error"]
    assert len(error.encode()) <= 4096
    assert error.startswith("runWorkflow settle: HTTP 400: no such workflow xxx")
    assert error.endswith(f"… (cut from {len(whole)} bytes)")
    [occurrence] = await store.list_occurrences((await store.list_triggers())[0].id, limit=10)
    assert occurrence.error == whole  # kept whole
    assert len(stub.calls) == 1
    assert await committed_offset(broker.bootstrap_servers, f"{topic}-group", topic) == 1


async def test_a_triggers_own_retry_policy_is_stored_and_applied(
    broker: TansuBroker, stub: StubOrchestration, topic: str, store: SqlStore
) -> None:
    stub.fail("settle", 503)
    impatient = {**TRIGGER, "retry": {"maxAttempts": 1}}
    dlq = f"{topic}-dlq"
    await broker.create_topics([dlq])
    await produce(broker.bootstrap_servers, topic, [payment()])
    await run_pipeline(broker, stub, topic, store, triggers=[impatient], dead_letter_topic=dlq)
    [trigger] = await store.list_triggers()
    assert trigger.retry is not None
    assert trigger.retry.max_attempts == 1
    [occurrence] = await store.list_occurrences(trigger.id, limit=10)
    assert occurrence.status is OccurrenceStatus.FAILED
    assert occurrence.attempts == 1  # the global policy here allows 2
    assert len(stub.calls) == 1
