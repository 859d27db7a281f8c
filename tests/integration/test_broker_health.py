"""A broker lost under a running daemon: readiness says so within seconds, one line says it
is gone and one that it is back. The daemon runs in-process against its own Tansu broker,
which the test freezes (SIGSTOP) and thaws."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import structlog

from trigger_daemon.app import Daemon
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.processes import DaemonProcess
from trigger_daemon.devtools.stub_orchestration import StubOrchestration

from .conftest import daemon_settings, in_process, wait_until


async def consumer_check(api: httpx.AsyncClient) -> tuple[bool, str | None]:
    answer = (await api.get("/readyz")).json()
    return answer["checks"]["consumer"], (answer.get("reasons") or {}).get("consumer")


async def test_a_frozen_broker_turns_readiness_false_within_seconds_and_back(
    stub: StubOrchestration, tmp_path: Path
) -> None:
    with TansuBroker() as broker:
        topic = "ledger-health"
        await broker.create_topics([topic])
        settings = daemon_settings(broker, topic, stub.url, f"sqlite:///{tmp_path}/store.db")
        daemon = Daemon(in_process(settings))
        stop = asyncio.Event()
        with structlog.testing.capture_logs() as logs:
            running = asyncio.create_task(daemon.run(stop))
            try:
                url = await asyncio.wait_for(daemon.wait_api_started(), timeout=30)
                async with httpx.AsyncClient(base_url=url) as api:

                    async def consumer_ready() -> bool:
                        return (await consumer_check(api))[0]

                    await wait_until(consumer_ready, what="the consumer to join")
                    os.kill(broker.pid, signal.SIGSTOP)
                    frozen_at = time.monotonic()
                    try:

                        async def consumer_unready() -> bool:
                            return not (await consumer_check(api))[0]

                        await wait_until(consumer_unready, within_seconds=15, what="readiness")
                        noticed_after = time.monotonic() - frozen_at
                        _, reason = await consumer_check(api)
                    finally:
                        os.kill(broker.pid, signal.SIGCONT)
                    await wait_until(consumer_ready, within_seconds=30, what="readiness back")
            finally:
                stop.set()
                await running
    assert noticed_after < 10
    assert reason == f"cannot reach Kafka at {broker.bootstrap_servers}: no answer within 3 s"
    events = [line["event"] for line in logs if line["event"].startswith("kafka.")]
    assert events == ["kafka.unreachable", "kafka.recovered"]


async def test_a_broker_gone_mid_run_is_one_line_not_a_storm(
    stub: StubOrchestration, tmp_path: Path
) -> None:
    broker = TansuBroker()
    broker.start()
    try:
        topic = "ledger-gone"
        await broker.create_topics([topic])
        settings = daemon_settings(broker, topic, stub.url, f"sqlite:///{tmp_path}/store.db")
        daemon = DaemonProcess(tmp_path, settings)
        try:
            daemon.start()
            await daemon.wait_ready()
            async with httpx.AsyncClient(base_url=daemon.api_url) as api:

                async def consumer_ready() -> bool:
                    return (await consumer_check(api))[0]

                await wait_until(consumer_ready, what="the consumer to join")
                lines_before = len(daemon.log_lines())
                broker.stop()
                await asyncio.sleep(15)
                outage = daemon.log_lines()[lines_before:]
                ready, reason = await consumer_check(api)
        finally:
            daemon.stop_quietly()
    finally:
        broker.stop()
    complaints = [line["event"] for line in outage if line["level"] in ("warning", "error")]
    assert complaints.count("kafka.unreachable") == 1
    assert len(complaints) < 20, complaints  # the client alone wrote about 60 a second
    assert not ready
    assert reason is not None
    assert reason.startswith(f"cannot reach Kafka at {broker.bootstrap_servers}: ")
