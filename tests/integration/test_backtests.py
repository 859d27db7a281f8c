"""Backtests against the real broker: a daemon in this process serves the API, the history is
records with explicit timestamps on their own topic, and the store is a SQLite file."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from trigger_daemon.adapters.api import create_api, serving
from trigger_daemon.adapters.api.backtests import BacktestHandlers
from trigger_daemon.adapters.kafka import KafkaConnection
from trigger_daemon.adapters.kafka.history import KafkaHistory
from trigger_daemon.adapters.store import open_store
from trigger_daemon.app import Daemon
from trigger_daemon.core.events import Unprocessable, envelope_from_object
from trigger_daemon.core.rehearsal import RehearsalEvent, explain
from trigger_daemon.core.triggers import parse_definition, yaml_trigger_id
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.stub_orchestration import StubOrchestration
from trigger_daemon.engine.backtests import Backtests
from trigger_daemon.triggers.catalog import TriggerCatalog

from .conftest import committed_offset, daemon_settings, in_process, wait_until

TRIGGER = {
    "name": "big-deposit",
    "event": "COMMITTED_TRANSACTIONS",
    # abs() of a string raises: a filter error, as a live run counts it.
    "filter": "abs(event.transactions[0].postings[0].amount) > `1000`",
    "workflowID": "review",
    "vars": {
        "txid": "to_string(event.transactions[0].id)",
        "channel": "event.transactions[0].metadata.channel",  # missing: a var error
    },
}
TRIGGER_ID = yaml_trigger_id("big-deposit")
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)

Stamped = tuple[int, bytes]  # (timestamp in ms, value)


def stamp(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def deposit(tx_id: int, amount: int | str, channel: bool = True) -> bytes:
    event = events.committed_transaction(tx_id, 0)
    transaction = event["payload"]["transactions"][0]
    transaction["postings"][0]["amount"] = amount
    if not channel:
        transaction["metadata"] = {}
    return events.encode(event)


def history() -> list[Stamped]:
    """Matches, non-matches, filter errors, var errors, another type and garbage, a second
    apart."""
    values = [
        deposit(1, 5000),
        deposit(2, 10),
        deposit(3, "lots"),  # filter error
        deposit(4, 2000, channel=False),  # matched, var error
        events.encode(events.saved_payment("SUCCEEDED", 9000)),
        b"not json",
        deposit(5, 7000),
        deposit(6, 20),
        deposit(7, 8000, channel=False),
        deposit(8, 9000),
        deposit(9, "x"),
        deposit(10, 1),
    ]
    return [(stamp(BASE + timedelta(seconds=i)), value) for i, value in enumerate(values)]


async def produce_stamped(bootstrap: str, topic: str, records: list[Stamped]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for timestamp_ms, value in records:
            await producer.send_and_wait(topic, value, timestamp_ms=timestamp_ms)
    finally:
        await producer.stop()


def direct_evaluation(records: list[Stamped], occurred: set[str]) -> dict[str, int]:
    """The counts, by `core.rehearsal.explain` (the test route's code), record by record."""
    compiled = TriggerCatalog.compile_definition(parse_definition(TRIGGER))
    counts = dict.fromkeys(("matched", "filterErrors", "varErrors", "alreadyOccurred"), 0)
    for _, value in records:
        try:
            envelope = envelope_from_object(json.loads(value))
        except ValueError:
            continue
        if isinstance(envelope, Unprocessable) or envelope.type != TRIGGER["event"]:
            continue
        report = explain(compiled, RehearsalEvent(envelope, bare=False))
        counts["filterErrors"] += report.filter_error is not None
        if report.match:
            counts["matched"] += 1
            counts["varErrors"] += any(var.error for var in report.variables.values())
            counts["alreadyOccurred"] += f"{envelope.type}:{envelope.idempotency_key}" in occurred
    return counts


async def new_topic(broker: TansuBroker) -> str:
    name = f"history-{uuid.uuid4().hex[:12]}"
    await broker.create_topics([name], partitions=1)
    return name


@asynccontextmanager
async def running_daemon(settings: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    daemon = Daemon(in_process(settings))
    stop = asyncio.Event()
    running = asyncio.create_task(daemon.run(stop))
    try:
        url = await asyncio.wait_for(daemon.wait_api_started(), timeout=30)
        async with httpx.AsyncClient(base_url=url) as client:
            yield client
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=30)


async def finished(api: httpx.AsyncClient, backtest_id: str) -> dict[str, Any]:
    answers: list[dict[str, Any]] = []

    async def done() -> bool:
        response = await api.get(f"/v2/backtests/{backtest_id}")
        assert response.status_code == 200, response.text
        answers.append(response.json()["data"])
        return bool(answers[-1]["status"] != "running")

    await wait_until(done, within_seconds=60, what=f"backtest {backtest_id} to finish")
    return answers[-1]


async def test_a_backtest_counts_what_a_direct_evaluation_counts_and_changes_nothing(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    records = history()
    store_url = f"sqlite:///{tmp_path}/store.db"
    # The live daemon handles the first half: those events have occurrences.
    await produce_stamped(broker.bootstrap_servers, topic, records[:6])
    live = daemon_settings(broker, topic, stub.url, store_url, triggers=[TRIGGER])
    await asyncio.wait_for(Daemon(in_process(live)).run(asyncio.Event(), until_idle=True), 60)
    await produce_stamped(broker.bootstrap_servers, topic, records[6:])
    group = live["kafka"]["group_id"]
    committed_before = await committed_offset(broker.bootstrap_servers, group, topic)
    calls_before = len(stub.calls)
    store = await open_store(store_url)
    try:
        occurrences_before = await store.list_occurrences(TRIGGER_ID, limit=100)
    finally:
        await store.close()
    # Another daemon on the same store serves the API; its own live topic is elsewhere.
    beside = daemon_settings(
        broker, await new_topic(broker), stub.url, store_url, triggers=[TRIGGER]
    )

    async with running_daemon(beside) as api:
        answer = await api.post(
            "/v2/backtests",
            json={"triggerID": TRIGGER_ID, "since": BASE.isoformat(), "topics": [topic]},
        )
        assert answer.status_code == 202, answer.text
        started = answer.json()["data"]
        assert started["status"] in ("running", "succeeded")
        result = await finished(api, started["id"])

    occurred = {o.event_id for o in occurrences_before}
    assert result["status"] == "succeeded", result
    assert {key: result[key] for key in direct_evaluation(records, occurred)} == (
        direct_evaluation(records, occurred)
    )
    assert (result["matched"], result["varErrors"], result["alreadyOccurred"]) == (5, 2, 2)
    assert result["scanned"] == len(records)
    assert result["unprocessable"] == 1
    assert result["progress"] == {"read": len(records), "total": len(records)}
    assert [s["eventID"] for s in result["samples"]][:2] == [
        "COMMITTED_TRANSACTIONS:tx-main-1",
        "COMMITTED_TRANSACTIONS:tx-main-4",
    ]
    assert result["samples"][0]["vars"] == {"txid": "1", "channel": "api"}
    assert "channel" in result["samples"][1]["error"]
    assert result["samples"][0]["date"] == BASE.isoformat().replace("+00:00", "Z")
    # Nothing was called, written or committed.
    assert len(stub.calls) == calls_before
    store = await open_store(store_url)
    try:
        assert await store.list_occurrences(TRIGGER_ID, limit=100) == occurrences_before
    finally:
        await store.close()
    assert await committed_offset(broker.bootstrap_servers, group, topic) == committed_before


async def test_a_window_selects_exactly_the_records_stamped_inside_it(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    # Seconds after BASE, in offset order; not monotonic inside the window.
    seconds = [0, 1, 5, 3, 4, 2, 6, 7, 8, 9]
    records = [(stamp(BASE + timedelta(seconds=s)), deposit(s, 5000)) for s in seconds]
    await produce_stamped(broker.bootstrap_servers, topic, records)
    settings = daemon_settings(
        broker, await new_topic(broker), stub.url, f"sqlite:///{tmp_path}/store.db"
    )
    unsaved = {key: value for key, value in TRIGGER.items() if key != "name"}

    async with running_daemon(settings) as api:
        answer = await api.post(
            "/api/orchestration/v2/backtests",
            json={
                "trigger": unsaved,
                "since": (BASE + timedelta(seconds=3)).isoformat(),
                "until": (BASE + timedelta(seconds=7)).isoformat().replace("+00:00", "Z"),
                "topics": [topic],
            },
        )
        assert answer.status_code == 202, answer.text
        result = await finished(api, answer.json()["data"]["id"])

    assert result["status"] == "succeeded"
    assert "triggerID" not in result
    assert result["scanned"] == result["matched"] == 4
    assert result["alreadyOccurred"] == 0
    inside = [f"COMMITTED_TRANSACTIONS:tx-main-{s}" for s in (5, 3, 4, 6)]
    assert [sample["eventID"] for sample in result["samples"]] == inside


async def test_cancel_stops_a_backtest_and_more_than_allowed_are_refused(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=20)
    await producer.start()
    try:
        value = deposit(1, 5000)
        for _ in range(30_000):
            await producer.send(topic, value)
        await producer.flush()
    finally:
        await producer.stop()
    store_url = f"sqlite:///{tmp_path}/store.db"
    settings = daemon_settings(
        broker,
        topic,
        stub.url,
        store_url,
        kafka={"group_id": "never-joins-history"},
        backtest={"max_running": 1},
    )
    settings["kafka"]["topics"] = [await new_topic(broker)]
    body = {"trigger": {"event": "COMMITTED_TRANSACTIONS", "workflowID": "w"}, "since": "1d"}
    body["topics"] = [topic]

    async with running_daemon(settings) as api:
        first = await api.post("/v2/backtests", json=body)
        assert first.status_code == 202, first.text
        refused = await api.post("/v2/backtests", json=body)
        assert refused.status_code == 429
        assert refused.json()["errorCode"] == "VALIDATION"
        assert "backtest.max_running" in refused.json()["errorMessage"]
        backtest_id = first.json()["data"]["id"]
        cancelled = await api.delete(f"/v2/backtests/{backtest_id}")
        assert cancelled.status_code == 200, cancelled.text
        ended = cancelled.json()["data"]
        assert ended["status"] == "cancelled"
        assert ended["scanned"] < 30_000
        assert ended["finishedAt"]
        # Read back from the store by a second API on the same database, as another replica.
        store = await open_store(store_url)
        try:
            catalog = TriggerCatalog(store)
            connection = KafkaConnection(broker.bootstrap_servers)
            backtests = Backtests(KafkaHistory(connection), store)
            handlers = BacktestHandlers(backtests, catalog, store, [topic])
            app = create_api(catalog, store, version="test", backtests=handlers)
            async with (
                serving(app, host="127.0.0.1", port=0) as port,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as other,
            ):
                again = await other.get(f"/v2/backtests/{backtest_id}")
                listed = await other.get("/v2/backtests")
        finally:
            await store.close()
        assert again.status_code == 200, again.text
        assert again.json()["data"] == ended
        assert [b["id"] for b in listed.json()["data"]] == [backtest_id]
        # Room again for one.
        second = await api.post("/v2/backtests", json=body | {"until": "23h"})
        assert second.status_code == 202, second.text


async def test_bad_requests_name_the_field_as_create_does(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    settings = daemon_settings(broker, topic, stub.url, f"sqlite:///{tmp_path}/store.db")
    trigger = {"event": "E", "workflowID": "w"}
    async with running_daemon(settings) as api:
        cases: list[tuple[dict[str, Any], int, str, str]] = [
            ({"trigger": trigger}, 400, "VALIDATION", "since: Field required"),
            ({"trigger": trigger, "since": "yesterday"}, 400, "VALIDATION", "since: 'yesterday'"),
            ({"trigger": trigger, "since": "2024-05-01"}, 400, "VALIDATION", "since:"),
            ({"trigger": trigger, "since": "1h", "until": "2h"}, 400, "VALIDATION", "earlier"),
            ({"trigger": trigger, "since": "1h", "samples": 1001}, 400, "VALIDATION", "samples:"),
            ({"trigger": trigger, "since": "1h", "topics": ["nope"]}, 400, "VALIDATION", "nope"),
            ({"trigger": trigger, "since": "1h", "sinse": "x"}, 400, "VALIDATION", "sinse"),
            ({"since": "1h"}, 400, "VALIDATION", "triggerID"),
            ({"triggerID": "missing", "since": "1h"}, 404, "NOT_FOUND", "missing"),
            (
                {"trigger": trigger | {"filter": "a ==== b"}, "since": "1h"},
                400,
                "VALIDATION",
                "invalid trigger: filter 'a ==== b'",
            ),
        ]
        for body, status, code, fragment in cases:
            answer = await api.post("/v2/backtests", json=body)
            assert answer.status_code == status, (body, answer.text)
            assert answer.json()["errorCode"] == code
            assert fragment in answer.json()["errorMessage"], (body, answer.text)
        created = await api.post("/v2/triggers", json=trigger | {"filter": "a ==== b"})
        assert created.json()["errorMessage"] == answer.json()["errorMessage"]
        assert (await api.get("/v2/backtests/unknown")).status_code == 404
        document = (await api.get("/openapi.json")).json()
        assert {"/v2/backtests", "/v2/backtests/{backtestID}"} <= set(document["paths"])
