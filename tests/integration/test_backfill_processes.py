"""Backfills in real daemon processes: SIGKILL during one and a restart (it resumes from its
saved position), and two replicas on one PostgreSQL database (one runs it; when that one is
killed, the other takes it over once the lease has expired).

The trigger is created once the live pipeline has passed the history (nothing matched
then), so only the backfill runs it over those events. A repeated Idempotency-Key is allowed
only within the documented window: a call in flight when its daemon was killed (at most one
per ordering key).
"""

from __future__ import annotations

import collections
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.postgres import PostgresCluster
from trigger_daemon.devtools.processes import DaemonProcess
from trigger_daemon.devtools.stub_orchestration import StubOrchestration

from .conftest import committed_offset, daemon_settings, wait_until
from .test_backfills import TRIGGER, deposit, produce_stamped

pytestmark = pytest.mark.slow

KEYS = 4
EVENTS = 240
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def history() -> list[tuple[int, bytes, bytes]]:
    stamp = int(BASE.timestamp() * 1000)
    return [(stamp + n, f"account-{n % KEYS}".encode(), deposit(n, 5000)) for n in range(EVENTS)]


def config(
    broker: TansuBroker, topic: str, stub: StubOrchestration, store_url: str
) -> dict[str, Any]:
    return daemon_settings(
        broker,
        topic,
        stub.url,
        store_url,
        backfill={"lease_seconds": 5},
        shutdown_grace_seconds=5,
    )


async def start_backfill(replica: DaemonProcess, broker: TansuBroker, topic: str) -> str:
    group = replica.config["kafka"]["group_id"]

    async def consumed() -> bool:
        return await committed_offset(broker.bootstrap_servers, group, topic) == EVENTS

    await wait_until(consumed, what="the live pipeline to pass the history")
    async with httpx.AsyncClient(base_url=replica.api_url) as api:
        created = await api.post("/v2/triggers", json=TRIGGER)
        assert created.status_code == 201, created.text
        answer = await api.post(
            "/v2/backfills",
            json={"triggerID": created.json()["data"]["id"], "since": BASE.isoformat()},
        )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["data"]["id"])


async def wait_finished(replica: DaemonProcess, backfill_id: str) -> dict[str, Any]:
    answers: list[dict[str, Any]] = []

    async def done() -> bool:
        async with httpx.AsyncClient(base_url=replica.api_url) as api:
            answers.append((await api.get(f"/v2/backfills/{backfill_id}")).json()["data"])
        return bool(answers[-1]["status"] != "running")

    await wait_until(done, within_seconds=60, what="the backfill to finish", interval=0.2)
    return answers[-1]


def txids(*stubs: StubOrchestration) -> collections.Counter[int]:
    return collections.Counter(int(call.body["txid"]) for s in stubs for call in s.calls)


@pytest.mark.timeout(120)
async def test_a_backfill_killed_midway_resumes_after_restart_and_loses_nothing(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    await produce_stamped(broker.bootstrap_servers, topic, history())
    stub.delay_seconds = 0.06  # about 4 s of calls per key: time to stop it twice midway
    daemon = DaemonProcess(tmp_path, config(broker, topic, stub, f"sqlite:///{tmp_path}/s.db"))
    try:
        daemon.start()
        await daemon.wait_ready()
        backfill_id = await start_backfill(daemon, broker, topic)
        await wait_until(lambda: len(stub.calls) >= EVENTS // 3, what="a third of the calls")
        daemon.kill()
        called_before = len(stub.calls)
        killed_at = time.monotonic()
        daemon.start()  # same host and port: it takes its own backfill back at once
        await daemon.wait_ready()
        await wait_until(lambda: len(stub.calls) > called_before, what="the resumed calls")
        resumed_after = time.monotonic() - killed_at
        # SIGTERM midway: the records in hand finish, the position is saved, the lease let go.
        await wait_until(lambda: len(stub.calls) >= EVENTS // 2, what="half the calls")
        terminated_at = time.monotonic()
        assert await daemon.terminate(within_seconds=15) == 0
        stopped_in = time.monotonic() - terminated_at
        [released] = daemon.events("backfill.released")
        daemon.start()
        await daemon.wait_ready()
        result = await wait_finished(daemon, backfill_id)
        claims = daemon.events("backfill.claimed")
    finally:
        daemon.stop_quietly()

    calls = txids(stub)
    assert set(calls) == set(range(EVENTS))  # none lost
    repeated = [n for n, count in calls.items() if count > 1]
    assert len(repeated) <= KEYS, repeated  # only what was in flight when killed
    assert result["status"] == "succeeded", result
    assert result["matched"] == EVENTS
    assert result["ran"] + result["skipped"] == EVENTS
    assert len(claims) == 3, claims
    assert claims[1]["positions"], claims  # resumed from a saved position
    assert released["saved"]
    assert claims[2]["positions"] == released["positions"]
    assert stopped_in < 5 + 3  # the grace period, and the rest of the stop
    print(
        f"\ncrash-resume: {called_before} calls before SIGKILL, first call after restart "
        f"{resumed_after:.1f} s after the kill, resumed at {claims[1]['positions']}, "
        f"repeated keys {len(repeated)}, SIGTERM stopped it in {stopped_in:.1f} s, "
        f"final {result}"
    )


@pytest.mark.timeout(150)
async def test_with_two_replicas_one_runs_a_backfill_and_the_other_finishes_it_when_killed(
    broker: TansuBroker, topic: str, tmp_path: Path, postgres: PostgresCluster
) -> None:
    await produce_stamped(broker.bootstrap_servers, topic, history())
    store_url = postgres.new_database()
    stubs = {name: StubOrchestration(delay_seconds=0.05) for name in ("a", "b")}
    replicas: dict[str, DaemonProcess] = {}
    try:
        for name, stub in stubs.items():
            await stub.start()
            replicas[name] = DaemonProcess(
                tmp_path, config(broker, topic, stub, store_url), name=name
            )
        for replica in replicas.values():
            replica.start()
        for replica in replicas.values():
            await replica.wait_ready()
        backfill_id = await start_backfill(replicas["a"], broker, topic)
        await wait_until(
            lambda: any(len(s.calls) >= EVENTS // 3 for s in stubs.values()),
            what="one replica to run a third of it",
        )
        holder = next(name for name, s in stubs.items() if s.calls)
        other = "b" if holder == "a" else "a"
        assert stubs[other].calls == []  # only one runs it
        replicas[holder].kill()
        killed_at = time.monotonic()
        await wait_until(
            lambda: bool(stubs[other].calls), within_seconds=30, what="the other to take over"
        )
        takeover = time.monotonic() - killed_at
        result = await wait_finished(replicas[other], backfill_id)
    finally:
        for replica in replicas.values():
            replica.stop_quietly()
        for stub in stubs.values():
            await stub.stop()

    calls = txids(*stubs.values())
    assert set(calls) == set(range(EVENTS))
    repeated = [n for n, count in calls.items() if count > 1]
    assert len(repeated) <= KEYS, repeated
    assert result["status"] == "succeeded", result
    assert takeover < 5 + 1 + 2  # the lease, a claim poll, and slack for this busy machine
    print(f"\nlease take-over: first call of the other replica {takeover:.1f} s after SIGKILL")
