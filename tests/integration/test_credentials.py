"""Credentials the orchestration API refuses: an outage of ours, not the events'. Events
wait, readiness says why, one line says what to check, and work resumes once they are
accepted. The daemon runs in-process against the stub over real HTTP and the real broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import structlog

from trigger_daemon.adapters.store import open_store
from trigger_daemon.app import Daemon
from trigger_daemon.core.occurrences import OccurrenceStatus
from trigger_daemon.core.triggers import yaml_trigger_id
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.stub_orchestration import StubOrchestration

from .conftest import daemon_settings, in_process, produce, wait_until

TRIGGER = {"name": "settle", "event": "SAVED_PAYMENT", "workflowID": "settle"}
REFUSED = (
    "the orchestration API refused our credentials: check orchestration.token / client_id / "
    "client_secret"
)


async def statuses(store_url: str) -> list[OccurrenceStatus]:
    store = await open_store(store_url)
    try:
        rows = await store.list_occurrences(yaml_trigger_id("settle"), limit=100)
    finally:
        await store.close()
    return [row.status for row in rows]


async def readyz(api: httpx.AsyncClient) -> httpx.Response:
    return await api.get("/readyz")


async def test_a_refused_token_makes_events_wait_and_readiness_say_why(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    stub.require_bearer = "the-token-the-api-expects"
    store_url = f"sqlite:///{tmp_path}/store.db"
    settings = daemon_settings(
        broker,
        topic,
        stub.url,
        store_url,
        orchestration={
            "token": "a-token-nobody-issued",
            "retry": {"max_attempts": 2, "initial_backoff_seconds": 0.05},
        },
        triggers=[TRIGGER],
    )
    daemon = Daemon(in_process(settings))
    stop = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        running = asyncio.create_task(daemon.run(stop))
        try:
            url = await asyncio.wait_for(daemon.wait_api_started(), timeout=30)
            payments = [events.encode(events.saved_payment("SUCCEEDED", n)) for n in range(3)]
            await produce(broker.bootstrap_servers, topic, payments)
            async with httpx.AsyncClient(base_url=url) as api:

                async def orchestration_unready() -> bool:
                    answer = await readyz(api)
                    return answer.json()["checks"]["orchestration"] is False

                await wait_until(orchestration_unready, what="readiness to turn false")
                answer = (await readyz(api)).json()
                assert answer["status"] == "unavailable"
                assert answer["reasons"]["orchestration"].startswith(REFUSED)
                await asyncio.sleep(2)  # several probes, all refused
                assert OccurrenceStatus.FAILED not in await statuses(store_url)

                stub.require_bearer = "a-token-nobody-issued"  # the API now accepts it

                async def all_succeeded() -> bool:
                    found = await statuses(store_url)
                    return found == [OccurrenceStatus.SUCCEEDED] * 3

                await wait_until(all_succeeded, within_seconds=40, what="the events to run")
                assert (await readyz(api)).status_code == 200
        finally:
            stop.set()
            await running
    said = [line for line in logs if line["event"] == "orchestration.credentials_refused"]
    assert len(said) == 1
    assert said[0]["error"] == REFUSED
    assert not [line for line in logs if line["event"] == "occurrence.failed"]
    assert [line["event"] for line in logs].count("orchestration.recovered") == 1
