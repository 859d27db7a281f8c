"""Backfills against the real broker, in a daemon in this process: a stub orchestration API,
a SQLite store, events with explicit timestamps on the daemon's own topic."""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiokafka import AIOKafkaProducer

from trigger_daemon.app import Daemon
from trigger_daemon.core.triggers import yaml_trigger_id
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.stub_orchestration import StubCall, StubOrchestration

from .conftest import committed_offset, daemon_settings, in_process, wait_until
from .test_cli import run_cli

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
TRIGGER = {
    "name": "big-deposit",
    "event": "COMMITTED_TRANSACTIONS",
    "filter": "event.transactions[0].postings[0].amount > `1000`",
    "workflowID": "review",
    "vars": {"txid": "to_string(event.transactions[0].id)"},
}
KEYS = 4


def deposit(tx_id: int, amount: int) -> bytes:
    event = events.committed_transaction(tx_id, 0)
    event["payload"]["transactions"][0]["postings"][0]["amount"] = amount
    return events.encode(event)


def history(count: int, first_second: int = 0) -> list[tuple[int, bytes, bytes]]:
    """(timestamp ms, key, value) a second apart; every third one is small (no match)."""
    return [
        (
            int((BASE + timedelta(seconds=first_second + n)).timestamp() * 1000),
            f"account-{n % KEYS}".encode(),
            deposit(first_second + n, 10 if n % 3 == 2 else 5000),
        )
        for n in range(count)
    ]


async def produce_stamped(
    bootstrap: str, topic: str, records: list[tuple[int, bytes, bytes]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for timestamp_ms, key, value in records:
            await producer.send(topic, value, key=key, timestamp_ms=timestamp_ms)
        await producer.flush()
    finally:
        await producer.stop()


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


async def finished(api: httpx.AsyncClient, backfill_id: str, within: float = 60) -> dict[str, Any]:
    answers: list[dict[str, Any]] = []

    async def done() -> bool:
        response = await api.get(f"/v2/backfills/{backfill_id}")
        assert response.status_code == 200, response.text
        answers.append(response.json()["data"])
        return bool(answers[-1]["status"] != "running")

    await wait_until(done, within_seconds=within, what=f"backfill {backfill_id} to finish")
    return answers[-1]


def txids(calls: list[StubCall]) -> list[int]:
    return [int(call.body["txid"]) for call in calls]


async def create_trigger_after_live(
    api: httpx.AsyncClient, broker: TansuBroker, settings: dict[str, Any], topic: str, count: int
) -> str:
    """Once the live pipeline has passed the `count` records of `topic` (with no trigger:
    nothing ran), create TRIGGER; its id. Only a backfill runs it over those records."""
    group = settings["kafka"]["group_id"]

    async def consumed() -> bool:
        return await committed_offset(broker.bootstrap_servers, group, topic) == count

    await wait_until(consumed, what="the live pipeline to pass the history")
    created = await api.post("/v2/triggers", json=TRIGGER)
    assert created.status_code == 201, created.text
    return str(created.json()["data"]["id"])


async def test_a_backfill_runs_each_match_of_the_window_once_in_key_order_and_again_nothing(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    records = history(30)
    await produce_stamped(broker.bootstrap_servers, topic, records)
    settings = daemon_settings(broker, topic, stub.url, f"sqlite:///{tmp_path}/store.db")
    async with running_daemon(settings) as api:
        trigger_id = await create_trigger_after_live(api, broker, settings, topic, len(records))
        # The window: seconds 5 to 24 of the history.
        window = {
            "triggerID": trigger_id,
            "since": (BASE + timedelta(seconds=5)).isoformat(),
            "until": (BASE + timedelta(seconds=25)).isoformat().replace("+00:00", "Z"),
        }
        answer = await api.post("/v2/backfills", json=window)
        assert answer.status_code == 202, answer.text
        started = answer.json()["data"]
        assert (started["status"], started["triggerID"]) == ("running", trigger_id)
        first = await finished(api, started["id"])
        calls_after_first = list(stub.calls)

        again = await api.post("/api/orchestration/v2/backfills", json=window)
        assert again.status_code == 202, again.text
        second = await finished(api, again.json()["data"]["id"])
        listed = (await api.get("/v2/backfills")).json()["data"]

    expected = [n for n in range(5, 25) if n % 3 != 2]
    assert sorted(txids(calls_after_first)) == expected
    for key in range(KEYS):  # in key order
        of_key = [n for n in txids(calls_after_first) if n % KEYS == key]
        assert of_key == sorted(of_key)
    assert len({call.idempotency_key for call in calls_after_first}) == len(expected)
    assert first["status"] == "succeeded", first
    counts = {name: first[name] for name in ("scanned", "matched", "ran", "skipped", "failed")}
    assert counts == {
        "scanned": 20,
        "matched": len(expected),
        "ran": len(expected),
        "skipped": 0,
        "failed": 0,
    }
    assert first["progress"]["read"] >= 20
    assert first["finishedAt"]
    assert "owner" not in first
    # The second backfill of the same window runs nothing: every event already occurred.
    assert stub.calls == calls_after_first
    assert second["status"] == "succeeded", second
    assert (second["matched"], second["ran"], second["skipped"]) == (
        len(expected),
        0,
        len(expected),
    )
    assert [b["id"] for b in listed] == [second["id"], first["id"]]


async def test_a_backfill_overlapping_live_processing_calls_each_event_once(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    settings = daemon_settings(
        broker, topic, stub.url, f"sqlite:///{tmp_path}/store.db", triggers=[TRIGGER]
    )
    stub.delay_seconds = 0.05  # live takes seconds over them: the backfill meets it
    async with running_daemon(settings) as api:
        trigger_id = yaml_trigger_id("big-deposit")
        # Stamped now: live handles them as they arrive while the backfill reads them too.
        now = datetime.now(UTC)
        records = [
            (int(now.timestamp() * 1000), f"k{n % 4}".encode(), deposit(n, 5000))
            for n in range(200)
        ]
        producing = asyncio.create_task(produce_stamped(broker.bootstrap_servers, topic, records))
        await asyncio.sleep(0.2)
        answer = await api.post(
            "/v2/backfills", json={"triggerID": trigger_id, "since": "1m", "until": "-0s"}
        )
        await producing
        assert answer.status_code == 400  # a bad time names the field
        assert "until" in answer.json()["errorMessage"]
        answer = await api.post("/v2/backfills", json={"triggerID": trigger_id, "since": "1m"})
        assert answer.status_code == 202, answer.text
        result = await finished(api, answer.json()["data"]["id"])
        await wait_until(lambda: len(stub.calls) >= 200, what="every event to be handled")
        await asyncio.sleep(0.5)

    keys = collections.Counter(call.idempotency_key for call in stub.calls)
    assert len(keys) == 200
    assert [key for key, count in keys.items() if count > 1] == []
    assert result["status"] == "succeeded"
    assert result["ran"] + result["skipped"] == result["matched"] == 200


async def test_the_command_starts_one_through_the_daemon_and_follows_it_to_its_end(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    records = history(12)
    await produce_stamped(broker.bootstrap_servers, topic, records)
    settings = daemon_settings(broker, topic, stub.url, f"sqlite:///{tmp_path}/store.db")
    config = tmp_path / "daemon.yaml"
    async with running_daemon(settings) as api:
        trigger_id = await create_trigger_after_live(api, broker, settings, topic, len(records))
        port = api.base_url.port
        assert port is not None
        config.write_text(yaml.safe_dump(settings | {"api": {"port": port}}))
        done = await asyncio.to_thread(
            run_cli, "backfill", "--config", str(config), "--trigger", trigger_id,
            "--since", BASE.isoformat(), "--wait",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["status"], result["matched"], result["ran"]) == ("succeeded", 8, 8)
    assert "backfill 12 / 12 records (100%), matched 8, ran 8" in done.stderr
    assert sorted(txids(stub.calls)) == [n for n in range(12) if n % 3 != 2]

    # No daemon: the command says backfills run inside one.
    gone = run_cli("backfill", "--config", str(config), "--trigger", "x", "--since", "1h")
    assert gone.returncode == 1
    assert "start it (trigger-daemon run)" in gone.stderr


async def test_bad_requests_name_the_field_and_more_than_allowed_are_refused_until_cancelled(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    records = history(9)
    await produce_stamped(broker.bootstrap_servers, topic, records)
    settings = daemon_settings(
        broker, topic, stub.url, f"sqlite:///{tmp_path}/store.db", backfill={"max_running": 1}
    )
    stub.delay_seconds = 1.0  # the first backfill runs for seconds
    async with running_daemon(settings) as api:
        trigger_id = await create_trigger_after_live(api, broker, settings, topic, len(records))
        cases: list[tuple[dict[str, Any], int, str, str]] = [
            ({"triggerID": trigger_id}, 400, "VALIDATION", "since: Field required"),
            ({"triggerID": trigger_id, "since": "yesterday"}, 400, "VALIDATION", "since: 'yest"),
            ({"triggerID": trigger_id, "since": "1h", "until": "2h"}, 400, "VALIDATION", "earlier"),
            (
                {"triggerID": trigger_id, "since": "1h", "topics": ["x"]},
                400,
                "VALIDATION",
                "topics",
            ),
            ({"since": "1h"}, 400, "VALIDATION", "triggerID: Field required"),
            ({"triggerID": "missing", "since": "1h"}, 404, "NOT_FOUND", "missing"),
        ]
        for body, status, code, fragment in cases:
            answer = await api.post("/v2/backfills", json=body)
            assert answer.status_code == status, (body, answer.text)
            assert answer.json()["errorCode"] == code
            assert fragment in answer.json()["errorMessage"], (body, answer.text)
        body = {"triggerID": trigger_id, "since": BASE.isoformat()}
        first = await api.post("/v2/backfills", json=body)
        assert first.status_code == 202, first.text
        refused = await api.post("/v2/backfills", json=body)
        assert refused.status_code == 429
        assert refused.json()["errorCode"] == "VALIDATION"
        assert "backfill.max_running" in refused.json()["errorMessage"]
        first_id = first.json()["data"]["id"]
        cancelled = await api.delete(f"/v2/backfills/{first_id}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["data"]["status"] == "cancelled"
        ended = await finished(api, first_id)
        again = await api.post("/v2/backfills", json=body)
        assert again.status_code == 202, again.text
        assert (await api.get("/v2/backfills/unknown")).status_code == 404
        document = (await api.get("/openapi.json")).json()
    assert ended["status"] == "cancelled"
    assert ended["ran"] < 6
    assert {"/v2/backfills", "/v2/backfills/{backfillID}"} <= set(document["paths"])
