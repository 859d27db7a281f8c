"""The broker watch: one line when Kafka is lost, a reminder, one when it is back."""

from __future__ import annotations

import asyncio

import structlog

from trigger_daemon.adapters.kafka.health import BrokerWatch


class Broker:
    def __init__(self) -> None:
        self.up = True

    async def probe(self) -> None:
        if not self.up:
            raise ConnectionRefusedError("connect call failed")


async def test_losing_and_finding_the_broker_is_said_once_each_with_a_reminder_between() -> None:
    broker, now = Broker(), [0.0]
    watch = BrokerWatch(broker.probe, "kafka:9092", remind_every_seconds=60, clock=lambda: now[0])
    with structlog.testing.capture_logs() as logs:
        await watch.check()
        broker.up = False
        for second in range(0, 90, 2):  # 45 probes over 90 s of outage
            now[0] = float(second)
            await watch.check()
        problem = watch.problem
        broker.up = True
        now[0] = 95.0
        await watch.check()
    assert (
        problem == "cannot reach Kafka at kafka:9092: ConnectionRefusedError: connect call failed"
    )
    assert [line["event"] for line in logs] == [
        "kafka.unreachable",
        "kafka.unreachable",  # the reminder, a minute on
        "kafka.recovered",
    ]
    assert logs[1]["for_seconds"] == 60
    assert watch.problem is None


async def test_a_broker_that_does_not_answer_in_time_is_unreachable() -> None:
    async def hangs() -> None:
        await asyncio.sleep(10)

    watch = BrokerWatch(hangs, "kafka:9092", timeout_seconds=0.05)
    await watch.check()
    assert watch.problem == "cannot reach Kafka at kafka:9092: no answer within 0.05 s"
