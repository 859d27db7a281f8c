"""Re-drive: a failed occurrence runs again with the same idempotency key, through the API
and through `trigger-daemon retry-failed`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from trigger_daemon.app import Daemon
from trigger_daemon.core.triggers import yaml_trigger_id
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.stub_orchestration import StubOrchestration

from .conftest import daemon_settings, in_process, produce, wait_until

TRIGGER = {
    "name": "settle-payment",
    "event": "SAVED_PAYMENT",
    "workflowID": "settle",
    "vars": {"payment": "event.id"},
}
TRIGGER_ID = yaml_trigger_id("settle-payment")


def config(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> dict[str, Any]:
    return daemon_settings(
        broker, topic, stub.url, f"sqlite:///{tmp_path}/store.db", triggers=[TRIGGER]
    )


@pytest.fixture
async def api(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A running daemon whose three occurrences failed with a 404, and a client for its API."""
    stub.fail("settle", 404, error_message="workflow settle not found")
    daemon = Daemon(in_process(config(broker, stub, topic, tmp_path)))
    stop = asyncio.Event()
    running = asyncio.create_task(daemon.run(stop))
    try:
        url = await asyncio.wait_for(daemon.wait_api_started(), timeout=30)
        async with httpx.AsyncClient(base_url=url) as client:
            await produce(
                broker.bootstrap_servers,
                topic,
                [events.encode(events.saved_payment("SUCCEEDED", 10)) for _ in range(3)],
            )
            await wait_until(lambda: len(stub.calls) == 3, what="three failed calls")
            await wait_until(lambda: failed_count(client, 3), what="three failed occurrences")
            yield client
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=30)


async def failed_count(client: httpx.AsyncClient, expected: int) -> bool:
    page = (await client.get(f"/v2/triggers/{TRIGGER_ID}/occurrences")).json()["cursor"]
    return [o["status"] for o in page["data"]] == ["failed"] * expected


async def test_the_retry_route_runs_a_failed_occurrence_again_with_the_same_key(
    api: httpx.AsyncClient, stub: StubOrchestration
) -> None:
    page = (await api.get(f"/v2/triggers/{TRIGGER_ID}/occurrences")).json()["cursor"]
    failed = page["data"][0]
    stub.heal()
    answer = await api.post(f"/v2/triggers/{TRIGGER_ID}/occurrences/{failed['id']}/retry")
    assert answer.status_code == 200, answer.text
    retried = answer.json()["data"]
    assert retried["id"] == failed["id"]
    assert retried["status"] == "succeeded"
    assert retried["attempts"] == failed["attempts"] + 1
    assert retried["workflowInstanceID"]
    keys = [call.idempotency_key for call in stub.calls]
    assert keys[-1] == f"{TRIGGER_ID}:{failed['eventID']}"
    assert keys.count(keys[-1]) == 2  # the original failure and the re-drive

    again = await api.post(f"/v2/triggers/{TRIGGER_ID}/occurrences/{failed['id']}/retry")
    assert again.status_code == 409
    assert again.json()["errorCode"] == "VALIDATION"
    assert "only failed occurrences can be retried" in again.json()["errorMessage"]
    unknown = await api.post(f"/v2/triggers/{TRIGGER_ID}/occurrences/nope/retry")
    assert unknown.status_code == 404
    assert unknown.json()["errorCode"] == "NOT_FOUND"


async def test_retry_failed_re_drives_them_all_and_prints_a_summary(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    tmp_path: Path,
    api: httpx.AsyncClient,
) -> None:
    stub.heal()
    config_file = tmp_path / "daemon.yaml"
    config_file.write_text(yaml.safe_dump(config(broker, stub, topic, tmp_path)))
    command = [
        str(Path(sys.executable).parent / "trigger-daemon"),
        "retry-failed",
        "--config",
        str(config_file),
        "--trigger",
        TRIGGER_ID,
    ]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert f"retried 3 failed occurrence(s) of trigger {TRIGGER_ID}: 3 succeeded" in done.stdout
    assert done.stdout.count(" succeeded ") == 3  # one progress line each
    page = (await api.get(f"/v2/triggers/{TRIGGER_ID}/occurrences")).json()["cursor"]
    assert [o["status"] for o in page["data"]] == ["succeeded"] * 3

    by_name = [*command[:-1], "settle-payment"]  # the trigger's name works as well as its id
    nothing_left = await asyncio.to_thread(
        subprocess.run, by_name, capture_output=True, text=True, timeout=60
    )
    assert nothing_left.returncode == 0, nothing_left.stderr
    assert "retried 0 failed occurrence(s) of trigger settle-payment" in nothing_left.stdout


def test_retry_failed_names_an_unknown_trigger(tmp_path: Path) -> None:
    config_file = tmp_path / "daemon.yaml"
    config_file.write_text(yaml.safe_dump({"store": {"url": f"sqlite:///{tmp_path}/s.db"}}))
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "trigger-daemon"),
            "retry-failed",
            "--config",
            str(config_file),
            "--trigger",
            "missing-id",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no trigger has the id or name 'missing-id'" in done.stderr
    assert "Traceback" not in done.stderr
