"""`trigger-daemon demo`: the whole product on this machine with no outside service.

Starts Tansu (Kafka-compatible) and the stub orchestration API, runs the daemon with the
example triggers, publishes a mix of ledger and payment events (some matching, some not,
one unprocessable), reports the workflow runs as they arrive, then shows the occurrences
through the daemon's own API.

`python -m trigger_daemon.devtools.demo publish --bootstrap-servers HOST:PORT` only publishes
the demo events to a running broker (docker-compose.yml's `events` service does this).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from trigger_daemon.app import Daemon
from trigger_daemon.config import LoadedConfig, Settings
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.stub_orchestration import StubOrchestration
from trigger_daemon.lifecycle import STOP_SIGNALS, install_stop_signals

DEFAULT_TRIGGERS = Path(__file__).resolve().parents[2] / "config" / "triggers"
TOPICS = ("ledger", "payments")
# Per round, the events that match one of the example triggers (and so start one run each).
RUNS_PER_ROUND = 3
# How often, at most, the demo says how far the workflow runs have got.
PROGRESS_EVERY_SECONDS = 0.5


def demo_events(rounds: int, first_tx: int = 0) -> list[tuple[str, bytes]]:
    """Per round: a large and a small deposit, a succeeded and a pending payment, a flag.

    Transactions are numbered from `first_tx`; their idempotency keys derive from it, so a
    second publish to the same daemon needs another `first_tx` to start new runs."""
    out: list[tuple[str, bytes]] = []
    for n in range(rounds):
        tx = first_tx + 2 * n
        out += [
            ("ledger", events.encode(events.committed_transaction(tx, 250_000 + n))),
            ("ledger", events.encode(events.committed_transaction(tx + 1, 1_500))),
            ("payments", events.encode(events.saved_payment("SUCCEEDED", 9_007_199_254_740_993))),
            ("payments", events.encode(events.saved_payment("PENDING", 4_200))),
            ("ledger", events.encode(events.saved_metadata(f"users:{n}", "required"))),
        ]
    out.append(("ledger", b"this is not JSON"))
    return out


async def run_demo(
    rounds: int, triggers_dir: Path, keep_running: bool, say: Callable[[str], None]
) -> int:
    stop = asyncio.Event()
    # A hangup (the terminal closing) stops the demo too, and with it what the demo started.
    install_stop_signals(stop, (*STOP_SIGNALS, signal.SIGHUP))
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
            say(f"starting the daemon with the triggers in {triggers_dir} ...")
            running = asyncio.create_task(daemon.run(stop))
            api_url = await _wait_api(daemon, running)
            say(f"daemon up, API on {api_url}")
            records = demo_events(rounds)
            expected = RUNS_PER_ROUND * rounds
            started = time.perf_counter()
            await _publish(broker.bootstrap_servers, records)
            say(
                f"published {len(records)} events to {', '.join(TOPICS)}: {expected} match a "
                "trigger, 1 is not JSON (dead-lettered), the rest match none"
            )
            await _wait_for_calls(stub, expected, running, _Progress(expected, started, say))
            elapsed = time.perf_counter() - started
            say(f"{len(stub.calls)} workflow runs in {elapsed:.2f}s")
            await _show_occurrences(api_url, say)
            if keep_running:
                say(f"the daemon keeps running; API at {api_url}/v2/triggers — Ctrl-C stops it")
                await running
            else:
                say("stopping the daemon, the stub and the broker")
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


class _Progress:
    """Says `runs 4/12, 9.8/s` while the runs arrive: when the count moved, at most every
    PROGRESS_EVERY_SECONDS, and once more when the last one is in."""

    def __init__(self, expected: int, started: float, say: Callable[[str], None]) -> None:
        self._expected = expected
        self._started = started
        self._say = say
        self._shown = -1
        self._last_said = started  # nothing to say in the first moment: no "runs 0/12"

    def update(self, runs: int) -> None:
        now = time.perf_counter()
        due = now - self._last_said >= PROGRESS_EVERY_SECONDS or runs >= self._expected
        if runs == self._shown or not due:
            return
        rate = runs / max(now - self._started, 1e-9)
        self._say(f"  runs {runs}/{self._expected}, {rate:.1f}/s")
        self._shown, self._last_said = runs, now


async def _wait_for_calls(
    stub: StubOrchestration,
    expected: int,
    running: asyncio.Task[None],
    progress: _Progress,
    within_seconds: float = 60,
) -> None:
    deadline = time.monotonic() + within_seconds
    while (runs := len(stub.calls)) < expected:
        progress.update(runs)
        if running.done():
            running.result()
        if time.monotonic() > deadline:
            raise DemoError(f"only {runs} of {expected} workflow runs arrived in {within_seconds}s")
        await asyncio.sleep(0.1)
    progress.update(len(stub.calls))
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
            if page.get("hasMore"):
                say(f"  ... and more: the newest {len(page['data'])} are shown")


class DemoError(Exception):
    """The demo could not show what it promised (the daemon is too slow or stopped)."""


def main(rounds: int, triggers_dir: Path | None, keep_running: bool) -> int:
    directory = triggers_dir or DEFAULT_TRIGGERS
    if not directory.is_dir():
        print(
            f"trigger-daemon demo: no triggers directory at {directory}; pass --triggers DIR",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(run_demo(rounds, directory, keep_running, say=_say))
    except DemoError as exc:
        print(f"trigger-daemon demo: {exc}", file=sys.stderr)
        return 1


def _say(line: str) -> None:
    print(line, flush=True)  # progress shows as it happens, through a pipe too


async def publish_only(bootstrap_servers: str, rounds: int) -> None:
    """Publish the demo events to a running broker (the topics must exist)."""
    # Transaction ids from the clock: each publish starts new runs, not idempotent repeats.
    records = demo_events(rounds, first_tx=int(time.time()) * 100)
    await _publish(bootstrap_servers, records)
    _say(
        f"published {len(records)} events to {', '.join(TOPICS)} on {bootstrap_servers}: "
        f"{RUNS_PER_ROUND * rounds} match the example triggers, 1 is not JSON"
    )


def _publish_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m trigger_daemon.devtools.demo",
        description="Publish the demo's ledger and payment events to a running Kafka broker.",
    )
    parser.add_argument("action", choices=["publish"])
    parser.add_argument("--bootstrap-servers", default="localhost:9092", metavar="HOST:PORT")
    parser.add_argument("--rounds", type=int, default=4, help="event rounds to publish")
    args = parser.parse_args(argv)
    asyncio.run(publish_only(args.bootstrap_servers, args.rounds))


if __name__ == "__main__":
    _publish_main()
