"""The daemon end to end in-process: real broker, stub orchestration API over HTTP, SQLite."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from trigger_daemon.adapters.store import open_store
from trigger_daemon.app import Daemon
from trigger_daemon.core.occurrences import Occurrence, OccurrenceStatus
from trigger_daemon.core.triggers import yaml_trigger_id
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.stub_orchestration import StubOrchestration

from .conftest import (
    committed_offset,
    daemon_settings,
    in_process,
    produce,
    read_all,
    wait_until,
)

BIG_AMOUNT = 2**64 + 3

DEPOSIT_TRIGGER = {
    "name": "large-deposit",
    "event": "COMMITTED_TRANSACTIONS",
    "version": "v2",
    "filter": "event.transactions[0].postings[0].amount > `100000`",
    "workflowID": "review-deposit",
    "vars": {
        "txid": "to_string(event.transactions[0].id)",
        "amount": "event.transactions[0].postings[0].amount",
        "ledger": "event.ledger",
    },
}

RunDaemon = Callable[..., Awaitable[Daemon]]


@pytest.fixture
def run_daemon(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> RunDaemon:
    """Run the daemon until every record of `topic` is handled, then stop it."""

    async def run(
        triggers: list[dict[str, Any]],
        *,
        group_id: str = "daemon",
        api_version: str = "v2",
        dead_letter_topic: str | None = None,
    ) -> Daemon:
        settings = daemon_settings(
            broker,
            topic,
            stub.url,
            f"sqlite:///{tmp_path}/store.db",
            kafka={"group_id": f"{topic}-{group_id}", "dead_letter_topic": dead_letter_topic},
            orchestration={
                "api_version": api_version,
                "retry": {
                    "max_attempts": 3,
                    "initial_backoff_seconds": 0.01,
                    "max_backoff_seconds": 0.05,
                },
            },
            triggers=triggers,
        )
        daemon = Daemon(in_process(settings))
        await asyncio.wait_for(daemon.run(asyncio.Event(), until_idle=True), timeout=60)
        return daemon

    return run


async def occurrences(tmp_path: Path, trigger_name: str) -> list[Occurrence]:
    store = await open_store(f"sqlite:///{tmp_path}/store.db")
    try:
        return await store.list_occurrences(yaml_trigger_id(trigger_name), limit=1000)
    finally:
        await store.close()


def deposit(tx_id: int, amount: int, **fields: Any) -> bytes:
    event = events.committed_transaction(tx_id, amount)
    event.update(fields)
    return events.encode(event)


async def test_matching_events_run_workflows_with_rendered_vars_and_headers(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    tmp_path: Path,
    run_daemon: RunDaemon,
) -> None:
    await produce(
        broker.bootstrap_servers,
        topic,
        [deposit(1, BIG_AMOUNT), deposit(2, 500)],
        headers=[("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
    )
    await run_daemon([DEPOSIT_TRIGGER])

    assert len(stub.calls) == 1
    call = stub.calls[0]
    assert call.path == "/api/orchestration/v2/workflows/review-deposit/instances"
    assert call.body == {"txid": "1", "amount": str(BIG_AMOUNT), "ledger": "main"}
    trigger_id = yaml_trigger_id("large-deposit")
    assert call.idempotency_key == f"{trigger_id}:COMMITTED_TRANSACTIONS:tx-main-1"
    assert call.headers["traceparent"].startswith("00-0af7651916cd43dd")

    [occurrence] = await occurrences(tmp_path, "large-deposit")
    assert occurrence.status is OccurrenceStatus.SUCCEEDED
    assert occurrence.event_id == "COMMITTED_TRANSACTIONS:tx-main-1"
    assert occurrence.event["payload"]["transactions"][0]["postings"][0]["amount"] == BIG_AMOUNT
    assert occurrence.vars == call.body
    assert occurrence.attempts == 1
    assert occurrence.workflow_instance is not None
    assert occurrence.workflow_instance_id == occurrence.workflow_instance["id"]


async def test_v1_uses_the_v1_path(
    broker: TansuBroker, stub: StubOrchestration, topic: str, run_daemon: RunDaemon
) -> None:
    await produce(broker.bootstrap_servers, topic, [deposit(1, 200_000)])
    await run_daemon([DEPOSIT_TRIGGER], api_version="v1")
    assert [c.path for c in stub.calls] == ["/api/orchestration/workflows/review-deposit/instances"]


async def test_unmatched_and_version_mismatched_events_produce_nothing(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    tmp_path: Path,
    run_daemon: RunDaemon,
) -> None:
    await produce(
        broker.bootstrap_servers,
        topic,
        [
            deposit(1, 50),  # filter false
            deposit(2, 900_000, version="v1"),  # version mismatch
            events.encode(events.saved_payment("SUCCEEDED", 10)),  # other type
        ],
    )
    await run_daemon([DEPOSIT_TRIGGER])
    assert stub.calls == []
    assert await occurrences(tmp_path, "large-deposit") == []
    assert await committed_offset(broker.bootstrap_servers, f"{topic}-daemon", topic) == 3


async def test_a_var_yielding_null_fails_the_occurrence_without_a_call(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    tmp_path: Path,
    run_daemon: RunDaemon,
) -> None:
    trigger = {**DEPOSIT_TRIGGER, "vars": {"ref": "event.transactions[0].nope"}}
    await produce(broker.bootstrap_servers, topic, [deposit(1, 200_000)])
    await run_daemon([trigger])
    assert stub.calls == []
    [occurrence] = await occurrences(tmp_path, "large-deposit")
    assert occurrence.status is OccurrenceStatus.FAILED
    assert occurrence.error is not None
    assert "var 'ref'" in occurrence.error
    assert "null" in occurrence.error


async def test_a_404_fails_the_occurrence_with_the_status_in_its_error(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    tmp_path: Path,
    run_daemon: RunDaemon,
) -> None:
    stub.fail("review-deposit", 404, error_message="workflow review-deposit not found")
    await produce(broker.bootstrap_servers, topic, [deposit(1, 200_000)])
    await run_daemon([DEPOSIT_TRIGGER])
    assert len(stub.calls) == 1
    [occurrence] = await occurrences(tmp_path, "large-deposit")
    assert occurrence.status is OccurrenceStatus.FAILED
    assert occurrence.error is not None
    assert "404" in occurrence.error
    assert "workflow review-deposit not found" in occurrence.error


async def test_a_503_then_201_gives_one_succeeded_occurrence(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    tmp_path: Path,
    run_daemon: RunDaemon,
) -> None:
    stub.fail("review-deposit", 503, times=1)
    await produce(broker.bootstrap_servers, topic, [deposit(1, 200_000)])
    await run_daemon([DEPOSIT_TRIGGER])
    assert [c.answered_status for c in stub.calls] == [503, 201]
    assert len({c.idempotency_key for c in stub.calls}) == 1
    [occurrence] = await occurrences(tmp_path, "large-deposit")
    assert occurrence.status is OccurrenceStatus.SUCCEEDED
    assert occurrence.attempts == 2


async def test_a_failing_api_with_nothing_succeeding_makes_the_event_wait_not_fail(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    tmp_path: Path,
    run_daemon: RunDaemon,
) -> None:
    """Nothing succeeds while the call fails: the API's outage, not the workflow's fault. The
    call keeps trying past its policy's three attempts, spending none, and runs once the API
    answers again; nothing is dead-lettered."""
    dlq = f"{topic}-dlq"
    await broker.create_topics([dlq])
    stub.fail("review-deposit", 503, times=5)  # twice the policy's three attempts, and more
    await produce(broker.bootstrap_servers, topic, [deposit(1, 200_000)])
    await run_daemon([DEPOSIT_TRIGGER], dead_letter_topic=dlq)
    [occurrence] = await occurrences(tmp_path, "large-deposit")
    assert occurrence.status is OccurrenceStatus.SUCCEEDED
    assert occurrence.attempts == 6
    assert len({c.idempotency_key for c in stub.calls}) == 1
    assert await read_all(broker.bootstrap_servers, dlq, expected=1, within_seconds=1) == []


async def test_a_poison_record_is_dead_lettered_and_the_next_record_still_runs(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    run_daemon: RunDaemon,
) -> None:
    dlq = f"{topic}-dlq"
    await broker.create_topics([dlq])
    poison = b'{"type": "COMMITTED_TRANSACTIONS", "payload": "not an object"}'
    await produce(
        broker.bootstrap_servers,
        topic,
        [poison, deposit(7, 200_000)],
        headers=[("origin", b"ledger-eu")],
        key=b"main",
    )
    await run_daemon([DEPOSIT_TRIGGER], dead_letter_topic=dlq)

    assert [c.body["txid"] for c in stub.calls] == ["7"]
    [letter] = await read_all(broker.bootstrap_servers, dlq, expected=1)
    assert letter.value == poison
    assert letter.key == b"main"
    headers = dict(letter.headers)
    assert headers["origin"] == b"ledger-eu"
    assert headers["dead-letter-reason"] == b"payload-not-an-object"
    assert headers["dead-letter-source-topic"] == topic.encode()
    assert headers["dead-letter-source-partition"] == b"0"
    assert headers["dead-letter-source-offset"] == b"0"
    assert await committed_offset(broker.bootstrap_servers, f"{topic}-daemon", topic) == 2


async def test_a_restart_after_processing_makes_no_new_calls(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    tmp_path: Path,
    run_daemon: RunDaemon,
) -> None:
    await produce(broker.bootstrap_servers, topic, [deposit(n, 200_000) for n in range(5)])
    await run_daemon([DEPOSIT_TRIGGER])
    assert len(stub.calls) == 5

    await run_daemon([DEPOSIT_TRIGGER])  # same group: offsets were committed
    assert len(stub.calls) == 5

    # A new group reads everything again, as after lost offsets: the store remembers.
    await run_daemon([DEPOSIT_TRIGGER], group_id="other")
    assert len(stub.calls) == 5
    assert len(await occurrences(tmp_path, "large-deposit")) == 5


async def test_an_event_whose_idempotency_key_is_beyond_ascii_runs_and_holds_nothing_up(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    tmp_path: Path,
    run_daemon: RunDaemon,
) -> None:
    """A ledger's idempotency key is the client's own text. Such an event once raised in the
    HTTP client and was retried for ever, holding the records behind it on its key."""
    await produce(
        broker.bootstrap_servers,
        topic,
        [deposit(1, 200_000, idempotency_key="virement-façade-€"), deposit(2, 200_000)],
        key=b"same-account",
    )
    await run_daemon([DEPOSIT_TRIGGER])

    trigger_id = yaml_trigger_id("large-deposit")
    assert [call.idempotency_key for call in stub.calls] == [
        f"{trigger_id}:COMMITTED_TRANSACTIONS:virement-façade-€",
        f"{trigger_id}:COMMITTED_TRANSACTIONS:tx-main-2",
    ]
    found = await occurrences(tmp_path, "large-deposit")
    assert {occurrence.status for occurrence in found} == {OccurrenceStatus.SUCCEEDED}
    assert len(found) == 2


async def test_a_line_break_in_an_idempotency_key_or_a_traceparent_holds_nothing_up(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    tmp_path: Path,
    run_daemon: RunDaemon,
) -> None:
    """No header can carry a line break: the call raised in the HTTP client every time it was
    tried, holding the records behind it on its key. Now the occurrence fails and says why
    (a call without its key could run twice), and a traceparent with one is not passed on."""
    await produce(
        broker.bootstrap_servers,
        topic,
        [deposit(1, 200_000, idempotency_key="tx-1\nsecond line"), deposit(2, 200_000)],
        headers=[("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n")],
        key=b"same-account",
    )
    await run_daemon([DEPOSIT_TRIGGER])

    trigger_id = yaml_trigger_id("large-deposit")
    [call] = stub.calls
    assert call.idempotency_key == f"{trigger_id}:COMMITTED_TRANSACTIONS:tx-main-2"
    assert "traceparent" not in {name.lower() for name in call.headers}
    found = {o.event_id: o for o in await occurrences(tmp_path, "large-deposit")}
    refused = found["COMMITTED_TRANSACTIONS:tx-1\nsecond line"]
    assert refused.status is OccurrenceStatus.FAILED
    assert refused.error == (
        f"runWorkflow review-deposit: the Idempotency-Key "
        f"'{trigger_id}:COMMITTED_TRANSACTIONS:tx-1\\nsecond line' holds a control character, "
        "which no HTTP header can carry (it comes from the event's idempotency key)"
    )
    assert found["COMMITTED_TRANSACTIONS:tx-main-2"].status is OccurrenceStatus.SUCCEEDED


async def test_events_without_idempotency_key_use_the_watermill_uuid(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    tmp_path: Path,
    run_daemon: RunDaemon,
) -> None:
    event = events.committed_transaction(1, 200_000)
    del event["idempotency_key"]
    message_uuid = str(uuid.uuid4())
    await produce(
        broker.bootstrap_servers,
        topic,
        [json.dumps(event).encode()],
        headers=[("_watermill_message_uuid", message_uuid.encode())],
    )
    await run_daemon([DEPOSIT_TRIGGER])
    [occurrence] = await occurrences(tmp_path, "large-deposit")
    assert occurrence.event_id == message_uuid


async def test_a_trigger_created_through_the_api_fires_without_restart(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    settings = daemon_settings(broker, topic, stub.url, f"sqlite:///{tmp_path}/store.db")
    daemon = Daemon(in_process(settings))
    stop = asyncio.Event()
    running = asyncio.create_task(daemon.run(stop))
    try:
        api_url = await asyncio.wait_for(daemon.wait_api_started(), timeout=30)
        async with httpx.AsyncClient(base_url=api_url) as api:
            created = await api.post(
                "/api/orchestration/v2/triggers",
                json={
                    "event": "SAVED_PAYMENT",
                    "workflowID": "settle",
                    "filter": "event.status == 'SUCCEEDED'",
                    "vars": {"id": "event.id"},
                },
            )
            assert created.status_code == 201, created.text
        payment = events.saved_payment("SUCCEEDED", 10)
        await produce(broker.bootstrap_servers, topic, [events.encode(payment)])
        await wait_until(lambda: len(stub.calls) == 1, what="the API trigger to fire")
        assert stub.calls[0].body == {"id": payment["payload"]["id"]}
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=30)
