"""What the benchmarks of a run beside the live pipeline share (bench/backtest_beside_live.py,
bench/backfill_beside_live.py): the broker and a work directory, topics and their events, a
daemon on a topic, starting the run through the daemon's API, and the report of the live rate
alone and beside the run.

Events that match the trigger are addressed to `bench.TARGET_DESTINATION`; live events that
match no trigger (the live path's fastest and so most sensitive rate) to `UNMATCHED`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import throughput as bench  # the helpers of bench/throughput.py, beside this file

from trigger_daemon.devtools.broker import TansuBroker

TRIGGER = bench.trigger("deposit-to-treasury", bench.TARGET_DESTINATION)
UNMATCHED = "users:1"


@dataclass(frozen=True)
class Setting:
    """A running Tansu broker and a temporary directory for the daemons' files."""

    workdir: Path
    broker: TansuBroker

    async def topic(self, prefix: str) -> str:
        """A new topic, `prefix` and a random suffix, with the benchmarks' partitions."""
        topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
        await self.broker.create_topics([topic], partitions=bench.PARTITIONS)
        return topic

    async def publish(self, topic: str, count: int, destination: str) -> int:
        """Publishes `count` events to `destination`; the partitions' end offsets, summed."""
        template = bench.event_template(destination)
        ends = await bench.produce(self.broker.bootstrap_servers, topic, count, template)
        return sum(ends.values())

    def daemon(
        self, name: str, topic: str, stub_url: str, triggers: list[dict[str, Any]]
    ) -> bench.DaemonProcess:
        return bench.DaemonProcess(
            self.workdir,
            name,
            bootstrap=self.broker.bootstrap_servers,
            topic=topic,
            stub_url=stub_url,
            triggers=triggers,
        )

    def commits(self, daemon: bench.DaemonProcess, topic: str) -> bench.CommitWatcher:
        """Watches the daemon's group's committed offsets on `topic`."""
        return bench.CommitWatcher(self.broker.bootstrap_servers, daemon.group_id, topic)


@contextlib.contextmanager
def setting() -> Iterator[Setting]:
    with tempfile.TemporaryDirectory() as directory, TansuBroker() as broker:
        yield Setting(Path(directory), broker)


async def start(
    client: httpx.AsyncClient, daemon: bench.DaemonProcess, what: str, body: dict[str, Any]
) -> str:
    """Starts a `what` (backtest, backfill) through the daemon's API as soon as it answers;
    the run's id."""
    deadline = time.monotonic() + bench.START_TIMEOUT_SECONDS
    while True:
        daemon.check_alive()
        try:
            answer = await client.post(f"/v2/{what}s", json=body)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    if answer.status_code != 202:
        raise RuntimeError(f"the {what} was refused: {answer.text}")
    run_id: str = answer.json()["data"]["id"]
    return run_id


def report(what: str, alone: bench.Rate, beside: bench.Rate, run: str) -> None:
    """The live rate alone and beside a `what`, the run's own line, and their ratio."""
    for label, rate in (("alone", alone), (f"beside a {what}", beside)):
        print(f"live rate {label:<18} {rate}  ({rate.done:,} events in {rate.seconds:.1f} s)")
    print(f"  {run}")
    print(f"  ratio: {beside.per_second / alone.per_second:.0%} of the rate alone")


def arguments(description: str, *, history: int, history_help: str) -> argparse.ArgumentParser:
    """The options both take (the benchmark adds its own, then `--max-seconds`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--live", type=int, default=200_000, help="live records per run")
    parser.add_argument("--history", type=int, default=history, help=history_help)
    return parser


def add_max_seconds(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-seconds", type=float, default=60.0)
