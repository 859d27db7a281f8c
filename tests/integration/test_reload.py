"""Hot reload of YAML triggers with the daemon as a real process: an edited file applies
without a restart, a broken one changes nothing, and SIGHUP reloads at once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from trigger_daemon.core.triggers import yaml_trigger_id
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.processes import COMMAND, DaemonProcess
from trigger_daemon.devtools.stub_orchestration import StubOrchestration

from .conftest import daemon_settings, produce, wait_until

pytestmark = pytest.mark.slow

# The behaviour asked for: a change is active within 5 seconds.
RELOAD_WITHIN_SECONDS = 5


def trigger(name: str, workflow: str, **extra: str) -> dict[str, Any]:
    return {
        "name": name,
        "event": "COMMITTED_TRANSACTIONS",
        "workflowID": workflow,
        "vars": {"txid": "to_string(event.transactions[0].id)"},
        **extra,
    }


BOOK_A = trigger("book-a", "wa")
BOOK_B = trigger("book-b", "wb")
# `"DONE"` is a field name in JMESPath, not a string: validation rejects it.
BROKEN = trigger("broken", "wx", filter='event.status == "DONE"')


def config(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path, **extra: Any
) -> dict[str, Any]:
    return daemon_settings(
        broker,
        topic,
        stub.url,
        f"sqlite:///{tmp_path}/store.db",
        kafka={"session_timeout_ms": 3000},
        shutdown_grace_seconds=5,
        **extra,
    )


def write_triggers(path: Path, triggers: list[dict[str, Any]]) -> None:
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(triggers))


async def send_transaction(broker: TansuBroker, topic: str, tx_id: int) -> None:
    value = events.encode(events.committed_transaction(tx_id, 100))
    await produce(broker.bootstrap_servers, topic, [value])


def calls(stub: StubOrchestration) -> set[tuple[str, str]]:
    """(workflow, txid) of every runWorkflow call the stub answered."""
    return {(call.workflow_id, call.body["txid"]) for call in stub.calls}


async def wait_for_log(
    daemon: DaemonProcess, event: str, within_seconds: float = RELOAD_WITHIN_SECONDS
) -> dict[str, Any]:
    await wait_until(lambda: bool(daemon.events(event)), within_seconds, what=event)
    return daemon.events(event)[-1]


async def started_with_first_call(
    daemon: DaemonProcess, broker: TansuBroker, stub: StubOrchestration, topic: str
) -> None:
    """Started, and transaction 1 handled by the triggers of the start."""
    daemon.start()
    await daemon.wait_ready()
    await send_transaction(broker, topic, 1)
    await wait_until(lambda: ("wa", "1") in calls(stub), what="book-a to run for transaction 1")


async def test_editing_the_triggers_file_makes_a_new_trigger_fire_without_restart(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    triggers_file = tmp_path / "triggers" / "ledger.yaml"
    write_triggers(triggers_file, [BOOK_A])
    daemon = DaemonProcess(
        tmp_path, config(broker, stub, topic, tmp_path, triggers_files=["triggers/*.yaml"])
    )
    try:
        await started_with_first_call(daemon, broker, stub, topic)

        write_triggers(triggers_file, [BOOK_A, BOOK_B])
        reloaded = await wait_for_log(daemon, "triggers.reloaded")
        await send_transaction(broker, topic, 2)
        await wait_until(lambda: ("wb", "2") in calls(stub), what="book-b to run")
        await wait_until(lambda: ("wa", "2") in calls(stub), what="book-a to run")
        assert daemon.returncode is None  # the same process all along: no restart
    finally:
        daemon.stop_quietly()
    assert reloaded["cause"] == "file"
    assert (reloaded["added"], reloaded["changed"], reloaded["removed"]) == (1, 0, 0)
    assert ("wb", "1") not in calls(stub)  # transaction 1 was handled before the edit
    assert len(daemon.events("triggers.reloaded")) == 1


async def test_a_broken_edit_keeps_the_old_triggers_firing_and_names_file_and_trigger(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    triggers_file = tmp_path / "triggers" / "ledger.yaml"
    write_triggers(triggers_file, [BOOK_A])
    daemon = DaemonProcess(
        tmp_path, config(broker, stub, topic, tmp_path, triggers_files=["triggers/*.yaml"])
    )
    try:
        await started_with_first_call(daemon, broker, stub, topic)

        # book-b is valid, but it arrives with a broken trigger: nothing may be applied.
        write_triggers(triggers_file, [BOOK_A, BOOK_B, BROKEN])
        rejected = await wait_for_log(daemon, "triggers.reload_rejected")
        await send_transaction(broker, topic, 2)
        await wait_until(lambda: ("wa", "2") in calls(stub), what="book-a to run again")
        async with httpx.AsyncClient(base_url=daemon.api_url) as client:
            stored = (await client.get("/v2/triggers")).json()["cursor"]["data"]
            book_b = await client.get(f"/v2/triggers/{yaml_trigger_id('book-b')}")
        validate = await asyncio.to_thread(
            subprocess.run,
            [COMMAND, "validate", "--config", str(daemon.config_path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_DAEMON_")},
        )
        assert daemon.returncode is None
    finally:
        daemon.stop_quietly()

    [problem] = rejected["problems"]
    assert problem.startswith(f"{triggers_file}: triggers[2] (broken): filter ")
    assert '"DONE" is a field name' in problem
    assert rejected["level"] == "error"
    assert [trigger["name"] for trigger in stored] == ["book-a"]
    assert book_b.status_code == 404
    assert not [call for call in calls(stub) if call[0] != "wa"]
    # `validate` says the same, word for word, and fails.
    assert validate.returncode == 2
    assert [line.strip() for line in validate.stderr.splitlines()[1:]] == [problem]


async def test_sighup_applies_an_edit_of_the_config_files_triggers_at_once(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    # Polling once an hour: only the signal can make this reload happen within the test.
    settings = config(
        broker, stub, topic, tmp_path, triggers=[BOOK_A], triggers_poll_interval_seconds=3600
    )
    daemon = DaemonProcess(tmp_path, settings)
    try:
        await started_with_first_call(daemon, broker, stub, topic)

        edited = daemon.config | {"triggers": [BOOK_A, BOOK_B]}
        daemon.config_path.write_text(yaml.safe_dump(edited))
        os.kill(daemon.pid, signal.SIGHUP)
        reloaded = await wait_for_log(daemon, "triggers.reloaded")
        await send_transaction(broker, topic, 2)
        await wait_until(lambda: ("wb", "2") in calls(stub), what="book-b to run")

        # SIGHUP did not disturb the daemon: it still stops gracefully.
        assert daemon.returncode is None
        assert await daemon.terminate() == 0, daemon.tail()
    finally:
        daemon.stop_quietly()
    assert daemon.events("triggers.reload_requested")[0]["signal"] == "SIGHUP"
    assert reloaded["cause"] == "signal"
    assert (reloaded["added"], reloaded["changed"], reloaded["removed"]) == (1, 0, 0)
