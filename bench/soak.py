"""A soak: replicas on a live stream while faults play one after another, then a report.

It starts, on 127.0.0.1 and free ports: a Tansu broker, a private PostgreSQL cluster, one
stub orchestration API per replica (in this process, answering in 50 ms; one per replica so
every call is attributed to the replica that made it) and 3 replicas of the daemon as real
processes (`trigger-daemon run --config FILE`), one consumer group on a 6-partition topic,
one database, a short retry policy. It produces a steady stream (200 events/s over 300 keys)
while the faults play, each at its slot, then stops producing, drains (until the group has
committed every offset and every expected pair has a final occurrence, or a timeout) and
prints the report of bench/soak_report.py. Exit status 1 when a promise broke, 2 when the
soak itself could not run. Everything it started is stopped by PID, also on Ctrl-C.

    .venv/bin/python bench/soak.py                  # 3 minutes, every fault
    .venv/bin/python bench/soak.py --quick          # about a minute: kill, stop, postgres, api-503
    .venv/bin/python bench/soak.py --minutes 5 --schedule kill,postgres,rolling
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from soak_report import (
    CrashWindow,
    FaultRecord,
    Outage,
    Pair,
    PartitionOffsets,
    SoakReport,
    TimedCall,
    find_repeats,
    occurrence_figures,
)

from trigger_daemon.adapters.store import SqlStore, open_store
from trigger_daemon.core.events import Envelope, decode, event_id
from trigger_daemon.core.expressions import document_for
from trigger_daemon.core.matching import TriggerIndex
from trigger_daemon.core.triggers import Trigger, compile_trigger, yaml_trigger_id
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.postgres import PostgresCluster
from trigger_daemon.devtools.processes import DaemonProcess
from trigger_daemon.devtools.stub_orchestration import StubOrchestration

TRIGGERS: list[dict[str, Any]] = [
    {
        "name": "book-usd-transaction",
        "event": "COMMITTED_TRANSACTIONS",
        "filter": "event.transactions[0].postings[0].asset == 'USD/2'",
        "workflowID": "book",
        "vars": {
            "txid": "event.transactions[0].id",
            "amount": "event.transactions[0].postings[0].amount",
        },
    },
    {
        "name": "settle-payment",
        "event": "SAVED_PAYMENT",
        "filter": "event.status == 'SUCCEEDED'",
        "workflowID": "settle",
        "vars": {"payment": "event.id"},
    },
]
ANSWER_SECONDS = 0.05
SLOW_ANSWER_SECONDS = 1.5
SESSION_TIMEOUT_MS = 3000
CALL_TIMEOUT_SECONDS = 10  # orchestration.timeout_seconds
RETRY = {"max_attempts": 5, "initial_backoff_seconds": 0.1, "max_backoff_seconds": 1}
QUICK_SCHEDULE = ["kill", "stop", "postgres", "api-503"]
SETTLE_SECONDS = 3.0  # the least time between the end of a fault and the start of the next


@dataclass(frozen=True, slots=True)
class Options:
    minutes: float
    schedule: list[str]
    rate: int
    keys: int
    replicas: int
    partitions: int
    crash_window_seconds: float
    drain_timeout: float
    json_path: Path | None
    seed: int


class Clock:
    """Seconds since the stream started: the one time line of calls, kills and faults."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._start

    async def sleep_until(self, at: float) -> None:
        await asyncio.sleep(max(0.0, at - self.now()))


def expected_matcher() -> Callable[[Envelope], list[str]]:
    """The ids of the triggers an event matches, decided by the daemon's own matching."""
    created = datetime.now(UTC)
    compiled = [
        compile_trigger(
            Trigger.model_validate(
                {**definition, "id": yaml_trigger_id(definition["name"]), "createdAt": created}
            )
        )
        for definition in TRIGGERS
    ]
    index = TriggerIndex(compiled)
    return lambda envelope: [
        c.trigger.id for c in index.match(envelope, document_for(envelope)).triggers
    ]


class Stream:
    """A steady stream of realistic events; it remembers what the broker acknowledged."""

    def __init__(self, bootstrap: str, topic: str, options: Options) -> None:
        self.bootstrap, self.topic, self.options = bootstrap, topic, options
        self.produced = 0
        self.sends_failed = 0
        self.expected: set[Pair] = set()
        self.end_offsets: dict[int, int] = {}
        self._random = random.Random(options.seed)
        self._matches = expected_matcher()

    def _event(self, n: int) -> tuple[bytes, bytes]:
        key = f"account-{self._random.randrange(self.options.keys)}"
        amount = self._random.randrange(1, 10**6)
        if n % 10 == 9:
            status = self._random.choice(["SUCCEEDED", "PENDING"])
            return key.encode(), events.encode(events.saved_payment(status, amount))
        asset = "USD/2" if self._random.random() < 0.8 else "EUR/2"
        event = events.committed_transaction(n, amount, asset=asset, destination=f"users:{key}")
        return key.encode(), events.encode(event)

    def _acknowledged(self, value: bytes, sent: asyncio.Future[Any]) -> None:
        if sent.cancelled() or sent.exception() is not None:
            self.sends_failed += 1
            return
        metadata = sent.result()
        self.produced += 1
        self.end_offsets[metadata.partition] = max(
            self.end_offsets.get(metadata.partition, 0), metadata.offset + 1
        )
        envelope = decode(value)
        assert isinstance(envelope, Envelope)
        identity = event_id(envelope, {}, self.topic, metadata.partition, metadata.offset)
        self.expected.update((trigger_id, identity) for trigger_id in self._matches(envelope))

    async def run(self, clock: Clock, until: Callable[[], bool]) -> None:
        """Produce at `options.rate` (catching up after a stall) until `until()` holds."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            sent = 0
            while not until():
                due = int(clock.now() * self.options.rate)
                for _ in range(min(due - sent, self.options.rate)):
                    key, value = self._event(sent)
                    future = await producer.send(self.topic, value, key=key)
                    future.add_done_callback(lambda f, v=value: self._acknowledged(v, f))
                    sent += 1
                await asyncio.sleep(0.02)
            await producer.flush()
        finally:
            await producer.stop()


class Soak:
    """The running parts, the faults that break them, and what was seen meanwhile."""

    def __init__(self, options: Options, workdir: Path) -> None:
        self.options, self.workdir = options, workdir
        self.clock = Clock()
        self.broker = TansuBroker()
        self.cluster: PostgresCluster | None = None
        self.stubs: dict[str, StubOrchestration] = {}
        self.replicas: dict[str, DaemonProcess] = {}
        self.topic, self.dead_letter_topic = "ledger-soak", "ledger-soak-dlq"
        self.group = "trigger-daemon-soak"
        self.store_url = ""
        self.calls: list[TimedCall] = []
        self.outages: list[Outage] = []
        self.faults: list[FaultRecord] = []
        self.replica_exits: list[str] = []
        self.peak_rss_kib: dict[str, int] = {}
        self.handled: set[str] = set()  # replicas a fault is stopping or restarting
        self._calls_seen: dict[str, int] = {}
        self._next_victim = 0

    # Starting and stopping

    async def start(self, cleanup: contextlib.AsyncExitStack) -> None:
        await asyncio.to_thread(self.broker.start)
        cleanup.callback(self._stop_broker)
        self.cluster = await asyncio.to_thread(PostgresCluster.start)
        cleanup.callback(self.cluster.stop)
        self.store_url = self.cluster.new_database("soak")
        await self.broker.create_topics([self.topic], partitions=self.options.partitions)
        await self.broker.create_topics([self.dead_letter_topic], partitions=1)
        for n in range(1, self.options.replicas + 1):
            name = f"r{n}"
            stub = StubOrchestration(delay_seconds=ANSWER_SECONDS)
            await stub.start()
            cleanup.push_async_callback(stub.stop)
            self.stubs[name] = stub
            self.replicas[name] = DaemonProcess(self.workdir, self._config(stub.url), name=name)
            cleanup.callback(self._kill_quietly, self.replicas[name])
        for replica in self.replicas.values():
            replica.start()
        await asyncio.gather(*(r.wait_ready(60) for r in self.replicas.values()))

    def _config(self, stub_url: str) -> dict[str, Any]:
        return {
            "kafka": {
                "bootstrap_servers": self.broker.bootstrap_servers,
                "topics": [self.topic],
                "group_id": self.group,
                "dead_letter_topic": self.dead_letter_topic,
                "session_timeout_ms": SESSION_TIMEOUT_MS,
                "heartbeat_interval_ms": SESSION_TIMEOUT_MS // 10,
            },
            "orchestration": {
                "base_url": f"{stub_url}/api/orchestration",
                "timeout_seconds": CALL_TIMEOUT_SECONDS,
                "retry": RETRY,
            },
            "store": {"url": self.store_url},
            "logging": {"level": "warning"},
            "shutdown_grace_seconds": 10,
            "triggers": TRIGGERS,
        }

    def _stop_broker(self) -> None:
        with contextlib.suppress(RuntimeError, ProcessLookupError):
            os.kill(self.broker.pid, signal.SIGCONT)  # a paused broker cannot end
        self.broker.stop()

    @staticmethod
    def _kill_quietly(replica: DaemonProcess) -> None:
        with contextlib.suppress(AssertionError, ProcessLookupError):
            os.kill(replica.pid, signal.SIGCONT)
        replica.stop_quietly()

    # What is watched while the stream runs

    def take_calls(self) -> None:
        """Timestamp the calls each stub answered since the last look (every 20 ms)."""
        at = self.clock.now()
        for name, stub in self.stubs.items():
            seen = self._calls_seen.get(name, 0)
            if stub.call_count == seen:
                continue
            for call in stub.calls[seen:]:
                key = call.idempotency_key or "(none)"
                self.calls.append(TimedCall(at, name, key, call.answered_status))
            self._calls_seen[name] = stub.call_count

    async def watch_calls(self) -> None:
        while True:
            self.take_calls()
            await asyncio.sleep(0.02)

    async def watch_replicas(self) -> None:
        """Peak RSS of each replica (VmHWM of every process it ran as), and replicas that
        exited while no fault was handling them (restarted, and reported)."""
        while True:
            for name, replica in self.replicas.items():
                if name in self.handled:
                    continue
                if replica.returncode is not None:
                    self.replica_exits.append(
                        f"{name} exited with {replica.returncode} at {self.clock.now():.1f} s"
                    )
                    await self._restart(name)
                    continue
                peak = _vm_hwm_kib(replica.pid)
                self.peak_rss_kib[name] = max(self.peak_rss_kib.get(name, 0), peak)
            await asyncio.sleep(1.0)

    async def _restart(self, name: str) -> None:
        self.replicas[name].start()
        await self.replicas[name].wait_ready(60)

    # Faults: each returns a line saying what it did

    def _victim(self) -> str:
        names = list(self.replicas)
        self._next_victim += 1
        return names[(self._next_victim - 1) % len(names)]

    def _kill(self, name: str) -> None:
        self.outages.append(Outage(name, self.clock.now(), self.clock.now()))
        self.replicas[name].kill()

    async def kill(self) -> str:
        name = self._victim()
        self._kill(name)
        await self._restart(name)
        return f"SIGKILL {name}, restarted"

    async def stop(self) -> str:
        """Frozen with calls in flight, past its session timeout and its call timeout: its
        API answers 503 for half a second first, so it holds calls in retry back-off; healed
        at once, so the new owner of its partitions runs the same events meanwhile."""
        name = self._victim()
        seconds = max(2 * SESSION_TIMEOUT_MS / 1000, CALL_TIMEOUT_SECONDS) + 2
        self.stubs[name].fail(None, 503)
        await asyncio.sleep(0.5)
        os.kill(self.replicas[name].pid, signal.SIGSTOP)
        stopped = self.clock.now()
        self.stubs[name].heal()
        await asyncio.sleep(seconds)
        os.kill(self.replicas[name].pid, signal.SIGCONT)
        self.outages.append(Outage(name, stopped, self.clock.now()))
        return (
            f"{name}'s API 503 for 0.5 s, then SIGSTOP {name} for {seconds:g} s (session "
            f"timeout {SESSION_TIMEOUT_MS / 1000:g} s, call timeout {CALL_TIMEOUT_SECONDS} s), "
            "SIGCONT"
        )

    async def postgres(self) -> str:
        assert self.cluster is not None
        await asyncio.to_thread(self.cluster.pause)
        await asyncio.sleep(5)
        await asyncio.to_thread(self.cluster.resume)
        return "pg_ctl stop (fast), 5 s, pg_ctl start"

    async def api_503(self) -> str:
        for stub in self.stubs.values():
            stub.fail(None, 503)
        await asyncio.sleep(10)
        for stub in self.stubs.values():
            stub.heal()
        return "every call answered 503 for 10 s"

    async def api_slow(self) -> str:
        await self._slow_answers(10)
        return f"answers after {SLOW_ANSWER_SECONDS} s for 10 s"

    async def _slow_answers(
        self, seconds: float, then: Callable[[], Awaitable[Any]] | None = None
    ) -> None:
        for stub in self.stubs.values():
            stub.delay_seconds = SLOW_ANSWER_SECONDS
        await asyncio.sleep(seconds)
        if then is not None:
            await then()
        for stub in self.stubs.values():
            stub.delay_seconds = ANSWER_SECONDS

    async def broker_pause(self) -> str:
        os.kill(self.broker.pid, signal.SIGSTOP)
        await asyncio.sleep(4)
        os.kill(self.broker.pid, signal.SIGCONT)
        return "SIGSTOP Tansu for 4 s, SIGCONT"

    async def kill_backlog(self) -> str:
        """Slow answers pile records up behind each key, then a replica is killed."""
        name = self._victim()

        async def kill_now() -> None:
            self._kill(name)

        await self._slow_answers(6, then=kill_now)
        await self._restart(name)
        return f"answers after {SLOW_ANSWER_SECONDS} s for 6 s, then SIGKILL {name}, restarted"

    async def rolling(self) -> str:
        statuses = []
        for name, replica in self.replicas.items():
            statuses.append(f"{name} exit {await replica.terminate(60)}")
            await self._restart(name)
        return "SIGTERM and restart, one replica at a time: " + ", ".join(statuses)

    async def play(self, fault: str, not_before: float) -> None:
        """Play one fault at its slot (or right after the previous one, if later)."""
        await self.clock.sleep_until(not_before)
        action = FAULTS[fault]
        self.handled.update(self.replicas)
        started = self.clock.now()
        print(f"[{started:6.1f} s] {fault} ...", flush=True)
        try:
            detail = await action(self)
        finally:
            self.handled.clear()
        self.faults.append(FaultRecord(fault, started, self.clock.now(), detail))
        print(f"[{self.clock.now():6.1f} s] {fault}: {detail}", flush=True)


FAULTS: dict[str, Callable[[Soak], Awaitable[str]]] = {
    "kill": Soak.kill,
    "stop": Soak.stop,
    "postgres": Soak.postgres,
    "api-503": Soak.api_503,
    "api-slow": Soak.api_slow,
    "broker-pause": Soak.broker_pause,
    "kill-backlog": Soak.kill_backlog,
    "rolling": Soak.rolling,
}


def _vm_hwm_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((line for line in status.splitlines() if line.startswith("VmHWM:")), "")
    return int(line.split()[1]) if line else 0


# The run


async def play_schedule(soak: Soak, stream_seconds: float) -> None:
    """Each fault at its slot, spread evenly over the stream, never two at once."""
    schedule = soak.options.schedule
    ended = 0.0
    for n, fault in enumerate(schedule):
        slot = stream_seconds * (n + 1) / (len(schedule) + 1)
        await soak.play(fault, max(slot, ended + SETTLE_SECONDS))
        ended = soak.clock.now()


async def committed_offsets(soak: Soak) -> dict[int, int]:
    """The group's committed offset per partition, read with assign() (no group join)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=soak.broker.bootstrap_servers,
        group_id=soak.group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(soak.topic, p) for p in range(soak.options.partitions)]
        consumer.assign(partitions)
        return {tp.partition: int(await consumer.committed(tp) or 0) for tp in partitions}
    finally:
        await consumer.stop()


async def stored_occurrences(store: SqlStore) -> list[tuple[Pair, str]]:
    """((trigger id, event id), status) of every occurrence, through the store's own paging."""
    found = []
    for definition in TRIGGERS:
        trigger_id = yaml_trigger_id(definition["name"])
        before: int | None = None
        while page := await store.list_occurrences(trigger_id, limit=2000, before_seq=before):
            found += [((o.trigger_id, o.event_id), o.status.value) for o in page]
            before = page[-1].seq
    return found


async def drain(soak: Soak, stream: Stream, store: SqlStore) -> float | None:
    """Seconds until every offset is committed and every expected pair has a final
    occurrence; None when the drain timeout came first."""
    started = soak.clock.now()
    while soak.clock.now() - started < soak.options.drain_timeout:
        committed = await committed_offsets(soak)
        if all(committed.get(p, 0) >= end for p, end in stream.end_offsets.items()):
            final = {
                pair for pair, status in await stored_occurrences(store) if status != "pending"
            }
            if stream.expected <= final:
                return soak.clock.now() - started
        await asyncio.sleep(2)
    return None


async def dead_letters(soak: Soak) -> dict[str, int]:
    """Dead letters by their `dead-letter-reason` header."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=soak.broker.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partition = TopicPartition(soak.dead_letter_topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        reasons: dict[str, int] = {}
        quiet = 0
        while quiet < 2:
            batch = (await consumer.getmany(partition, timeout_ms=1000)).get(partition, [])
            quiet = 0 if batch else quiet + 1
            for record in batch:
                headers = dict(record.headers)
                reason = headers.get("dead-letter-reason", b"?").decode(errors="replace")
                reasons[reason] = reasons.get(reason, 0) + 1
        return reasons
    finally:
        await consumer.stop()


async def build_report(
    soak: Soak, stream: Stream, store: SqlStore, streamed: float, drained_in: float | None
) -> SoakReport:
    window = CrashWindow(before=soak.options.crash_window_seconds, after=SLOW_ANSWER_SECONDS + 0.5)
    lost, statuses, multiple, unexpected = occurrence_figures(
        stream.expected, await stored_occurrences(store)
    )
    called_more_than_once, repeats = find_repeats(soak.calls, soak.outages, window)
    committed = await committed_offsets(soak)
    return SoakReport(
        seconds_streamed=streamed,
        produced=stream.produced,
        sends_failed=stream.sends_failed,
        matched=len(stream.expected),
        lost=lost,
        statuses=statuses,
        multiple_occurrences=multiple,
        unexpected_occurrences=unexpected,
        keys_called_more_than_once=called_more_than_once,
        repeats=repeats,
        crash_window=window,
        dead_letters=await dead_letters(soak),
        offsets=[
            PartitionOffsets(p, stream.end_offsets.get(p, 0), committed.get(p, 0))
            for p in range(soak.options.partitions)
        ],
        peak_rss_mib={name: kib / 1024 for name, kib in sorted(soak.peak_rss_kib.items())},
        faults=soak.faults,
        replica_exits=soak.replica_exits,
        drained_in=drained_in,
    )


async def run_soak(options: Options, workdir: Path) -> SoakReport:
    stream_seconds = options.minutes * 60
    async with contextlib.AsyncExitStack() as cleanup:
        soak = Soak(options, workdir)
        print(f"starting the broker, PostgreSQL, {options.replicas} replicas ...", flush=True)
        await soak.start(cleanup)
        stream = Stream(soak.broker.bootstrap_servers, soak.topic, options)
        soak.clock = clock = Clock()
        print(
            f"[   0.0 s] streaming {options.rate} events/s over {options.keys} keys for "
            f"{stream_seconds:.0f} s; faults: {', '.join(options.schedule)}",
            flush=True,
        )
        watchers = [asyncio.create_task(w) for w in (soak.watch_calls(), soak.watch_replicas())]
        cleanup.push_async_callback(_cancel, watchers)
        faults_played = asyncio.Event()

        async def schedule() -> None:
            await play_schedule(soak, stream_seconds)
            faults_played.set()

        def stream_done() -> bool:
            return faults_played.is_set() and clock.now() >= stream_seconds

        async with asyncio.TaskGroup() as running:
            running.create_task(stream.run(clock, until=stream_done))
            running.create_task(schedule())
        streamed = clock.now()
        print(
            f"[{streamed:6.1f} s] stream stopped after {stream.produced} events; draining",
            flush=True,
        )
        store = await open_store(soak.store_url)
        cleanup.push_async_callback(store.close)
        drained_in = await drain(soak, stream, store)
        soak.take_calls()
        return await build_report(soak, stream, store, streamed, drained_in)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def parse_options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="bench/soak.py",
        description="Replicas on PostgreSQL under a live stream while faults play; a report.",
    )
    parser.add_argument("--minutes", type=float, default=3.0, help="stream length (default 3)")
    parser.add_argument(
        "--schedule",
        default=",".join(FAULTS),
        help=f"faults in order, comma-separated, from: {', '.join(FAULTS)} (default: all)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"1 minute with {','.join(QUICK_SCHEDULE)} (the test suite's run)",
    )
    parser.add_argument("--rate", type=int, default=200, help="events per second (200)")
    parser.add_argument("--keys", type=int, default=300, help="distinct record keys (300)")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--crash-window",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="a repeat is allowed after a 2xx answer to a replica SIGKILLed or SIGSTOPped "
        "up to this long after it (default 5)",
    )
    parser.add_argument("--drain-timeout", type=float, default=180.0, metavar="SECONDS")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report here")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args(argv)
    schedule = QUICK_SCHEDULE if args.quick else [f for f in args.schedule.split(",") if f]
    unknown = [fault for fault in schedule if fault not in FAULTS]
    if unknown:
        parser.error(f"unknown faults {unknown}; known: {', '.join(FAULTS)}")
    return Options(
        minutes=1.0 if args.quick else args.minutes,
        schedule=schedule,
        rate=args.rate,
        keys=args.keys,
        replicas=args.replicas,
        partitions=args.partitions,
        crash_window_seconds=args.crash_window,
        drain_timeout=args.drain_timeout,
        json_path=args.json,
        seed=args.seed,
    )


async def _main(options: Options, workdir: Path) -> SoakReport:
    """The soak, cancelled (and cleaned up) on SIGTERM as on Ctrl-C."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run_soak(options, workdir)


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    # A killed replica drops its requests mid-body; the stub's server logs each as an error.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    workdir = Path(tempfile.mkdtemp(prefix="trigger-daemon-soak-"))
    try:
        report = asyncio.run(_main(options, workdir))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"interrupted; replica logs kept in {workdir}", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"the soak could not run: {exc!r}; replica logs kept in {workdir}", file=sys.stderr)
        raise SystemExit(2) from exc
    print(report.render())
    if options.json_path is not None:
        report.write_json(options.json_path)
    if report.problems():
        print(f"replica logs kept in {workdir}")
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
