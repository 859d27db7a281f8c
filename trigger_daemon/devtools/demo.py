"""`trigger-daemon demo`: the whole product on this machine with no outside service.

Starts Tansu (Kafka-compatible) and the stub orchestration API, runs the daemon with the
example triggers, publishes a mix of ledger and payment events (some matching, some not,
one unprocessable), waits until every record is handled, then shows the occurrences
through the daemon's own API.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from trigger_daemon.app import Daemon, install_stop_signals
from trigger_daemon.config import LoadedConfig, Settings
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.stub_orchestration import StubOrchestration

DEFAULT_TRIGGERS = Path(__file__).resolve().parents[2] / "config" / "triggers"
TOPICS = ("ledger", "payments")


def demo_events(rounds: int) -> list[tuple[str, bytes]]:
    """Per round: a large and a small deposit, a succeeded and a pending payment, a flag."""
    out: list[tuple[str, bytes]] = []
    for n in range(rounds):
        out += [
            ("ledger", events.encode(events.committed_transaction(2 * n, 250_000 + n))),
            ("ledger", events.encode(events.committed_transaction(2 * n + 1, 1_500))),
            ("payments", events.encode(events.saved_payment("SUCCEEDED", 9_007_199_254_740_993))),
            ("payments", events.encode(events.saved_payment("PENDING", 4_200))),
            ("ledger", events.encode(events.saved_metadata(f"users:{n}", "required"))),
        ]
    out.append(("ledger", b"this is not JSON"))
    return out


async def run_demo(
    rounds: int, triggers_dir: Path, keep_running: bool, say: Callable[[str], None]
) -> int:
    with tempfile.TemporaryDirectory(prefix="trigger-daemon-demo-") as workdir:
        async with TansuBroker() as broker, StubOrchestration() as stub:
            await broker.create_topics([*TOPICS, "trigger-daemon-dlq"], partitions=3)
            say(
                f"broker (Tansu) on {broker.bootstrap_servers}; "
                f"stub orchestration API on {stub.url}"
            )
            # model_validate, not Settings(): the demo ignores TRIGGER_DAEMON_* variables.
            settings = Settings.model_validate(
                {
                    "kafka": {
                        "bootstrap_servers": broker.bootstrap_servers,
                        "topics": list(TOPICS),
                        "group_id": "trigger-daemon-demo",
                        "session_timeout_ms": 2000,
                        "heartbeat_interval_ms": 500,
                    },
                    "orchestration": {
                        "base_url": f"{stub.url}/api/orchestration",
                        "api_version": "v2",
                        "retry": {"max_attempts": 3, "initial_backoff_seconds": 0.1},
                    },
                    "store": {"url": f"sqlite:///{workdir}/demo.db"},
                    "api": {"port": 0},
                    "triggers_files": [str(triggers_dir / "*.yaml")],
                }
            )
            daemon = Daemon(LoadedConfig(settings=settings, path=None))
            stop = asyncio.Event()
            install_stop_signals(stop)
            running = asyncio.create_task(daemon.run(stop))
            api_url = await _wait_api(daemon, running)
            records = demo_events(rounds)
            started = time.perf_counter()
            await _publish(broker.bootstrap_servers, records)
            say(f"published {len(records)} events to {', '.join(TOPICS)}")
            await _wait_for_calls(stub, expected=3 * rounds, running=running)
            elapsed = time.perf_counter() - started
            say(f"{len(stub.calls)} workflow runs in {elapsed:.2f}s")
            await _show_occurrences(api_url, say)
            if keep_running:
                say(f"the daemon keeps running; API at {api_url}/v2/triggers — Ctrl-C stops it")
                await running
            else:
                stop.set()
                await running
    return 0


async def _wait_api(daemon: Daemon, running: asyncio.Task[None]) -> str:
    started = asyncio.create_task(daemon.wait_api_started())
    await asyncio.wait({started, running}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        started.cancel()
        running.result()
        raise RuntimeError("the daemon stopped before its API started")
    return started.result()


async def _publish(bootstrap: str, records: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, value in records:
            # Formance publishers (watermill) give each message a uuid; it is the event's
            # identity when the event carries no idempotency key.
            headers = [("_watermill_message_uuid", str(uuid.uuid4()).encode())]
            await producer.send(topic, value, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


async def _wait_for_calls(
    stub: StubOrchestration, expected: int, running: asyncio.Task[None], within_seconds: float = 60
) -> None:
    deadline = time.monotonic() + within_seconds
    while len(stub.calls) < expected:
        if running.done():
            running.result()
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(stub.calls)} of {expected} workflow runs arrived")
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # let the last outcomes be written


async def _show_occurrences(api_url: str, say: Callable[[str], None]) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        triggers: list[dict[str, Any]] = (await client.get("/v2/triggers")).json()["cursor"]["data"]
        for trigger in triggers:
            page = (
                await client.get(
                    f"/v2/triggers/{trigger['id']}/occurrences", params={"pageSize": 3}
                )
            ).json()["cursor"]
            say(
                f"\n{trigger['name']} ({trigger['event']} → {trigger['workflowID']}):"
                f" GET {api_url}/v2/triggers/{trigger['id']}/occurrences"
            )
            for occurrence in page["data"]:
                say(
                    f"  {occurrence['status']:<9} event {occurrence['eventID']}"
                    f"  vars {occurrence['vars']}"
                    f"  instance {occurrence.get('workflowInstanceID', '-')}"
                )


def main(rounds: int, triggers_dir: Path | None, keep_running: bool) -> int:
    directory = triggers_dir or DEFAULT_TRIGGERS
    if not directory.is_dir():
        print(
            f"trigger-daemon demo: no triggers directory at {directory}; pass --triggers DIR",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(run_demo(rounds, directory, keep_running, say=print))
