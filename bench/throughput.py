"""Throughput of the daemon against what its libraries can do at best on this machine.

One run starts a Tansu broker and a stub orchestration API (each in its own process), runs
the daemon as an operator does (`trigger-daemon run --config FILE`, a fresh SQLite store in a
temporary directory, the default log level: info, one JSON line per occurrence) and prints,
side by side:

1. matched     N events that all match: workflow runs/s, and the daemon's CPU per run, against
               a bare aiohttp client with 64 workers posting the same requests to the same
               stub (the daemon and the client run in turn three times, and each one's median
               is compared);
2. unmatched   M events that match no filter: events/s until the group's committed offsets
               reach the end, against a bare aiokafka consumer that reads and decodes (orjson)
               the same topic (the daemon and the consumer run in turn three times, and each
               one's median is compared; the consumer's CPU per record is shown too);
3. latency     the stub answering after 20 ms: runs/s, against bare aiohttp with 256 in flight
               (measured as for 1.);
4. triggers    the unmatched events again with 10,000 triggers of their event type instead
               of one: how much more each event costs; 4b. mixed: the same with 10,000
               triggers of four shapes (equalities, numeric ranges, prefixes, either-or);
5. peak RSS    of the daemon reading a topic with 1,000,000 records waiting;
and, to show where the HTTP engine stands apart from the rest of the daemon:
6. client      the daemon's OrchestrationClient alone (httpx over its aiohttp transport), 64
               callers, against bare aiohttp; also httpx's own transport and the
               `httpx-aiohttp` package's when installed, with the client's CPU per request.
and filters that are evaluated in full on every event, none matching:
7. projection  the unmatched events with one trigger filtering on a nested projection
               (`event.transactions[?postings[?asset=='EUR/2']] | length(@) > 0`), against
               the bare aiokafka consumer (measured as for 2.);
8. unindexed   the unmatched events with 1,000 triggers no index answers
               (`length(event.transactions[?postings[?amount > N]]) > 0`, N varying):
               how much more each event costs than with one trigger.

After the table, per daemon run: its peak RSS, its event loop's longest stall (its own
`trigger_daemon_event_loop_longest_lag_seconds`), the slowest /healthz answer seen while it
ran (asked every 250 ms) and the fetch requests that timed out (from its log).

Rates are taken from the first progress observed to the end (group joins and start-up do not
count). A run that has not finished after --max-seconds is stopped and its rate so far shown,
marked `partial`. Topics have 8 partitions and 4,096 distinct record keys, so key-ordered
concurrency has room.

    .venv/bin/python bench/throughput.py                       # every row: over 15 minutes
    .venv/bin/python bench/throughput.py --matched 2000 --unmatched 20000 --rss-records 0
    .venv/bin/python bench/throughput.py --only matched,latency --profile /tmp/profiles

`--profile DIR` records each daemon run with py-spy from its first progress to the end
(DIR/<run>.txt, collapsed stacks for flame graphs, plus the top functions on stdout).
`--store-url` points the daemon at another store (sqlite:///:memory: leaves the disk out).
Results and the machine are in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import httpx
import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from trigger_daemon.adapters.orchestration import OrchestrationClient
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker, free_port

PARTITIONS = 8
DISTINCT_KEYS = 4096
WORKFLOW = "reconcile-deposit"
EVENT_TYPE = "COMMITTED_TRANSACTIONS"
TARGET_DESTINATION = "treasury:0"  # the one trigger's filter matches this destination only
POLL_SECONDS = 0.05
# /healthz is asked every fifth poll (about four times a second): each answer costs the daemon
# a connection and a request, CPU the bare clients it is compared with do not spend.
HEALTHZ_EVERY_POLLS = 5
START_TIMEOUT_SECONDS = 180.0  # start-up, group join, and 10,000 triggers to store and compile
DAEMON = Path(sys.executable).parent / "trigger-daemon"
SCENARIOS = (
    "matched",
    "unmatched",
    "latency",
    "triggers",
    "mixed",
    "rss",
    "client",
    "projection",  # 7 and 8: filters evaluated in full
    "unindexed",
)
_SENTINEL = 987654321  # stands for the event number in the encoded template


# --- the parts: stub, daemon, records -------------------------------------------------------


class StubProcess:
    """The stub orchestration API in its own process, counting calls only."""

    def __init__(self, delay_seconds: float = 0.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._delay = delay_seconds
        self._process: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "trigger_daemon.devtools.stub_orchestration"),
            *("--port", str(self.port), "--delay", str(self._delay), "--count-only"),
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        await self._process.stdout.readline()  # "listening on ..."
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
        if self._process is not None:
            self._process.terminate()
            await self._process.wait()

    async def calls(self) -> int:
        assert self._session is not None
        async with self._session.get(f"{self.url}/_stub/stats") as response:
            return int((await response.json())["calls"])


def trigger(name: str, destination: str) -> dict[str, Any]:
    return {
        "name": name,
        "event": EVENT_TYPE,
        "filter": f"event.transactions[0].postings[0].destination == '{destination}'",
        "workflowID": WORKFLOW,
        "vars": {
            "txid": "to_string(event.transactions[0].id)",
            "amount": "to_string(event.transactions[0].postings[0].amount)",
        },
    }


_POSTING = "event.transactions[0].postings[0]"


def mixed_trigger(n: int) -> dict[str, Any]:
    """One of the four common filter shapes, by n: an equality, a numeric range (one bound, or
    two on one path), a prefix, an either-or; none matches the unmatched events (destination
    users:1234, amount 12,500, reference ref-N, asset USD/2)."""
    shapes = [
        f"{_POSTING}.destination == 'treasury:{n}'",
        f"{_POSTING}.amount > `{1_000_000 + n}`"
        if n % 8 == 1
        else f"{_POSTING}.amount > `{1_000 * n}` && {_POSTING}.amount <= `{1_000 * n + 500}`",
        f"starts_with(event.transactions[0].reference, 'inv-{n}-')",
        f"{_POSTING}.asset == 'EUR/{n}' || {_POSTING}.asset == 'GBP/{n}'",
    ]
    return {**trigger(f"mixed-{n}", "unused"), "filter": shapes[n % 4]}


class DaemonProcess:
    """`trigger-daemon run` with its own config, SQLite store, consumer group and log file."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        *,
        bootstrap: str,
        topic: str,
        stub_url: str,
        triggers: list[dict[str, Any]],
        store_url: str | None = None,
    ) -> None:
        self.name = name
        self.group_id = f"bench-{name}-{uuid.uuid4().hex[:8]}"
        self.log_path = workdir / f"{name}.log"
        self.api_url = f"http://127.0.0.1:{free_port()}"
        self._config_path = workdir / f"{name}.yaml"
        self._config = {
            "kafka": {
                "bootstrap_servers": bootstrap,
                "topics": [topic],
                "group_id": self.group_id,
                "dead_letter_topic": None,
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 1000,
            },
            "orchestration": {"base_url": stub_url, "api_version": "v2", "timeout_seconds": 10},
            "store": {"url": store_url or f"sqlite:///{workdir / name}.db"},
            "api": {"host": "127.0.0.1", "port": int(self.api_url.rsplit(":", 1)[1])},
            # The default level, as users run it: one JSON line per occurrence.
            "logging": {"level": "info", "format": "json"},
            "triggers": triggers,
        }
        self._process: subprocess.Popen[bytes] | None = None
        self._profiler: subprocess.Popen[bytes] | None = None
        self._profile_path: Path | None = None
        self._profile_dir: Path | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self, profile_dir: Path | None = None) -> None:
        self._profile_dir = profile_dir
        self._config_path.write_text(yaml.safe_dump(self._config))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_DAEMON_")}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(DAEMON), "run", "--config", str(self._config_path)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
            )

    def start_profiling(self) -> None:
        """py-spy from now on, when asked for: the measured part only, not the start-up."""
        if self._profile_dir is not None and self._profiler is None:
            self._profile_path = self._profile_dir / f"{self.name}.txt"
            self._profiler = start_profiler(self.pid, self._profile_path)

    async def healthz_seconds(self) -> float | None:
        """How long /healthz took to answer (None: no answer within 5 s). Timed in a thread
        with its own client, so this process's busy event loop does not count."""

        def probe() -> float | None:
            started = time.monotonic()
            try:
                httpx.get(f"{self.api_url}/healthz", timeout=5).raise_for_status()
            except httpx.HTTPError:
                return None
            return time.monotonic() - started

        return await asyncio.to_thread(probe)

    async def longest_loop_lag_seconds(self) -> float | None:
        """The daemon's own measure of its event loop's longest stall, from /metrics."""
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                text = (await client.get(f"{self.api_url}/metrics")).text
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            if line.startswith("trigger_daemon_event_loop_longest_lag_seconds "):
                return float(line.split()[1])
        return None

    def fetch_timeouts(self) -> int:
        """Fetch requests that timed out, as the daemon's log reports them."""
        return self.log_path.read_text(errors="replace").count("RequestTimedOutError")

    def check_alive(self) -> None:
        assert self._process is not None
        if self._process.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-20:]
            raise RuntimeError(f"daemon {self.name} exited: " + "\n".join(tail))

    def cpu_seconds(self) -> float:
        """User and system CPU the process has used so far (/proc/PID/stat)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        """The process's high-water resident set (VmHWM), in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    async def stop(self) -> None:
        try:
            await self.stop_profiling()
        finally:  # a profile that cannot be read must not leave the daemon running
            await self._terminate()

    async def _terminate(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self._process.wait, 30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            await asyncio.to_thread(self._process.wait)

    async def stop_profiling(self) -> None:
        if self._profiler is not None:
            self._profiler.send_signal(signal.SIGINT)
            await asyncio.to_thread(self._profiler.wait, 60)
            assert self._profile_path is not None
            print_profile(self._profile_path)
            self._profiler = None


@contextlib.asynccontextmanager
async def running(daemon: DaemonProcess, profile_dir: Path | None) -> AsyncIterator[DaemonProcess]:
    daemon.start(profile_dir)
    try:
        yield daemon
    finally:
        await daemon.stop()


def py_spy_command() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def start_profiler(pid: int, output: Path) -> subprocess.Popen[bytes]:
    py_spy = py_spy_command()
    assert py_spy is not None  # checked with the arguments
    # Non-blocking: pausing the process for every sample would slow it down noticeably.
    # 500 Hz: a run lasts a few seconds, and py-spy's default 100 Hz leaves too few samples.
    command = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--nonblocking"]
    command += ["--rate", "500"]
    return subprocess.Popen(
        [*command, "--output", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def print_profile(path: Path, top: int = 25) -> None:
    """The functions with the most samples in py-spy's collapsed stacks: on the stack
    (inclusive) and at the top of it (self)."""
    if not path.exists():
        print(f"  (no profile at {path})")
        return
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    # A stack ends with " <samples>"; a frame's name may hold a line break (a thread named
    # after a log line), so a stack can span lines.
    for match in re.finditer(r"(.+?) (\d+)$", path.read_text(), re.MULTILINE | re.DOTALL):
        stack, samples = match.group(1), int(match.group(2))
        frames = stack.split(";")
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    print(f"  profile {path} ({total} samples); self, then inclusive:")
    for label, counter in (("self", own), ("incl", inclusive)):
        for frame, samples in counter.most_common(top):
            print(f"    {label} {100 * samples / total:5.1f}%  {frame}")


def event_template(destination: str) -> bytes:
    event = events.committed_transaction(_SENTINEL, 12_500, asset="USD/2", destination=destination)
    return events.encode(event)


def numbered(template: bytes, number: int) -> bytes:
    """The event of `event_template` numbered `number` (its transaction id and reference)."""
    return template.replace(b"%d" % _SENTINEL, b"%d" % number)


def record_key(number: int) -> bytes:
    return b"account-%d" % (number % DISTINCT_KEYS)


async def produce(bootstrap: str, topic: str, count: int, template: bytes) -> dict[int, int]:
    """`count` events (the template with the event number in it), spread over the partitions
    by key; returns each partition's end offset (Tansu's ListOffsets cannot be trusted)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=50)
    await producer.start()
    ends: dict[int, int] = dict.fromkeys(range(PARTITIONS), 0)
    pending: list[tuple[int, int, asyncio.Future[Any]]] = []
    try:
        batches = {p: producer.create_batch() for p in range(PARTITIONS)}
        counts = dict.fromkeys(range(PARTITIONS), 0)

        async def flush(partition: int) -> None:
            future = await producer.send_batch(batches[partition], topic, partition=partition)
            pending.append((partition, counts[partition], future))
            batches[partition] = producer.create_batch()
            counts[partition] = 0

        for number in range(count):
            key = record_key(number)
            partition = (number % DISTINCT_KEYS) % PARTITIONS
            value = numbered(template, number)
            if batches[partition].append(key=key, value=value, timestamp=None) is None:
                await flush(partition)
                batches[partition].append(key=key, value=value, timestamp=None)
            counts[partition] += 1
        for partition in range(PARTITIONS):
            if counts[partition]:
                await flush(partition)
        for partition, records, future in pending:
            metadata = await future
            ends[partition] = max(ends[partition], metadata.offset + records)
    finally:
        await producer.stop()
    return ends


class CommitWatcher:
    """Reads a group's committed offsets without joining the group or reading records."""

    def __init__(self, bootstrap: str, group_id: str, topic: str) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False
        )
        self._partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    async def __aenter__(self) -> Self:
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        self._consumer.pause(*self._partitions)  # no fetching: it would compete with the daemon
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._consumer.stop()

    async def total(self) -> int:
        offsets = await asyncio.gather(*(self._consumer.committed(p) for p in self._partitions))
        return sum(offset or 0 for offset in offsets)


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Rate:
    per_second: float
    done: int
    seconds: float
    partial: bool = False
    peak_rss_mb: float | None = None
    cpu_us: float | None = None  # CPU per unit of work: the daemon's, or a bare client's
    loop_stall_ms: float | None = None  # the daemon's longest event loop stall
    slowest_healthz_ms: float | None = None  # the slowest /healthz answer during the run
    fetch_timeouts: int = 0

    def __str__(self) -> str:
        mark = " (partial)" if self.partial else ""
        cpu = "" if self.cpu_us is None else f", {self.cpu_us:,.0f} us CPU each"
        return f"{self.per_second:,.0f}/s{mark}{cpu}"

    def responsiveness(self) -> str:
        """The daemon's event loop during the run, for the table's footnotes."""
        stall = "?" if self.loop_stall_ms is None else f"{self.loop_stall_ms:,.0f} ms"
        health = "none" if self.slowest_healthz_ms is None else f"{self.slowest_healthz_ms:,.0f} ms"
        return (
            f"longest loop stall {stall}, slowest /healthz {health}, "
            f"fetch timeouts {self.fetch_timeouts}"
        )


def median(rates: list[Rate]) -> Rate:
    return sorted(rates, key=lambda rate: rate.per_second)[len(rates) // 2]


async def in_turn(
    daemon_run: Callable[[], Awaitable[Rate]],
    ceiling_run: Callable[[], Awaitable[Rate]],
    ceiling_name: str,
    times: int = 3,
) -> tuple[Rate, Rate]:
    """The daemon's and the ceiling's medians over `times` runs each, taken in turn: on this
    shared VM the speed of both drifts within a minute (one run of each gave unmatched ratios
    from 0.37x to 0.58x, matched ones from 0.20x to 0.30x, within ten minutes on unchanged
    code). The daemon's figures for the footnotes are the worst of its runs."""
    daemons: list[Rate] = []
    ceilings: list[Rate] = []
    for _ in range(times):
        ceilings.append(await ceiling_run())
        daemons.append(await daemon_run())
        print(f"  daemon {daemons[-1]}, {ceiling_name} {ceilings[-1]}", flush=True)
    return with_worst_responsiveness(median(daemons), daemons), median(ceilings)


def with_worst_responsiveness(rate: Rate, runs: list[Rate]) -> Rate:
    """`rate`, with the longest stall, slowest /healthz, peak RSS and timeouts of all `runs`."""

    def worst(values: list[float | None]) -> float | None:
        known = [value for value in values if value is not None]
        return max(known) if known else None

    return dataclasses.replace(
        rate,
        peak_rss_mb=worst([run.peak_rss_mb for run in runs]),
        loop_stall_ms=worst([run.loop_stall_ms for run in runs]),
        slowest_healthz_ms=worst([run.slowest_healthz_ms for run in runs]),
        fetch_timeouts=sum(run.fetch_timeouts for run in runs),
    )


async def measure_progress(
    progress: Callable[[], Awaitable[int]],
    goal: int,
    max_seconds: float,
    daemon: DaemonProcess | None = None,
) -> Rate:
    """Polls `progress` until it reaches `goal`: the rate from the first change seen."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    start = await progress()
    while (first := await progress()) == start:
        if daemon is not None:
            daemon.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError("no progress within the start-up timeout")
        await asyncio.sleep(POLL_SECONDS)
    t_first = time.monotonic()
    cpu_first = 0.0
    if daemon is not None:
        cpu_first = daemon.cpu_seconds()
        daemon.start_profiling()
    done, now = first, t_first
    slowest_healthz: float | None = 0.0
    polls = 0
    while done < goal:
        if now - t_first > max_seconds:
            break
        await asyncio.sleep(POLL_SECONDS)
        polls += 1
        if daemon is not None:
            daemon.check_alive()
        if daemon is not None and polls % HEALTHZ_EVERY_POLLS == 0:
            answered = await daemon.healthz_seconds()
            if slowest_healthz is not None:
                slowest_healthz = None if answered is None else max(slowest_healthz, answered)
        done, now = await progress(), time.monotonic()
    seconds = max(now - t_first, 1e-9)
    rate = Rate((done - first) / seconds, done - first, seconds, partial=done < goal)
    if daemon is not None:
        rate.peak_rss_mb = daemon.peak_rss_mb()
        rate.cpu_us = (daemon.cpu_seconds() - cpu_first) / max(rate.done, 1) * 1e6
        lag = await daemon.longest_loop_lag_seconds()
        rate.loop_stall_ms = None if lag is None else lag * 1000
        rate.slowest_healthz_ms = None if slowest_healthz is None else slowest_healthz * 1000
        rate.fetch_timeouts = daemon.fetch_timeouts()
        await daemon.stop_profiling()
    return rate


async def in_parallel(count: int, workers: int, call: Callable[[int], Awaitable[None]]) -> Rate:
    """`count` calls by `workers` concurrent workers: their rate and this process's CPU."""
    numbers = iter(range(count))

    async def worker() -> None:
        for number in numbers:
            await call(number)

    started, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(workers)))
    seconds = time.monotonic() - started
    cpu_us = (time.process_time() - cpu) / count * 1e6
    return Rate(count / seconds, count, seconds, cpu_us=cpu_us)


async def bare_http(url: str, count: int, in_flight: int) -> Rate:
    """The ceiling: aiohttp alone, `in_flight` workers posting runWorkflow requests."""
    path = f"{url}/v2/workflows/{WORKFLOW}/instances"
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call(number: int) -> None:
            body = {"txid": str(number), "amount": "12500"}
            headers = {"Idempotency-Key": f"bench:{number}"}
            async with session.post(path, json=body, headers=headers) as response:
                await response.json()
                assert response.status == 201

        return await in_parallel(count, in_flight, call)


async def client_http(
    url: str, count: int, in_flight: int, transport: httpx.AsyncBaseTransport | None
) -> Rate:
    """The daemon's OrchestrationClient alone: one request per call, classified."""
    async with OrchestrationClient(
        url, "v2", None, 10.0, transport=transport, max_connections=in_flight
    ) as api:

        async def call(number: int) -> None:
            variables = {"txid": str(number), "amount": "12500"}
            attempt = await api.start_workflow(WORKFLOW, variables, idempotency_key=f"b:{number}")
            assert attempt.succeeded, attempt.error

        return await in_parallel(count, in_flight, call)


def other_transports(in_flight: int) -> dict[str, httpx.AsyncBaseTransport]:
    """The engines the default is compared with: httpx's own, and httpx-aiohttp's if there."""
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    engines: dict[str, httpx.AsyncBaseTransport] = {
        "httpx's own transport": httpx.AsyncHTTPTransport(limits=limits)
    }
    try:
        from httpx_aiohttp import AiohttpTransport  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return engines
    engines["httpx-aiohttp package"] = AiohttpTransport(limits=limits)
    return engines


async def bare_consume(bootstrap: str, topic: str, ends: dict[int, int]) -> Rate:
    """The ceiling: aiokafka alone reading every record of the topic and decoding it with
    orjson, as the daemon decodes (the standard library's json.loads takes about 2.5 times as
    long per event, and a ceiling with it reads about two thirds as fast)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        goal, done, started, cpu_started = sum(ends.values()), 0, 0.0, 0.0
        while done < goal:
            batches = await consumer.getmany(timeout_ms=200)
            if batches and not started:
                started, cpu_started = time.monotonic(), time.process_time()
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value)
                done += len(records)
        seconds = time.monotonic() - started
        cpu_seconds = time.process_time() - cpu_started
    finally:
        await consumer.stop()
    return Rate(done / seconds, done, seconds, cpu_us=cpu_seconds / done * 1e6)


# --- the scenarios --------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    broker: TansuBroker
    workdir: Path
    topics: dict[str, tuple[str, dict[int, int]]] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    async def topic(self, name: str, count: int, destination: str) -> tuple[str, dict[int, int]]:
        """A topic of `count` events to `destination`, produced once and shared by runs."""
        if name not in self.topics:
            topic = f"bench-{name}-{uuid.uuid4().hex[:8]}"
            await self.broker.create_topics([topic], partitions=PARTITIONS)
            started = time.monotonic()
            ends = await produce(self.bootstrap, topic, count, event_template(destination))
            seconds = time.monotonic() - started
            print(f"  produced {count:,} records to {topic} in {seconds:.1f} s", flush=True)
            self.topics[name] = (topic, ends)
        return self.topics[name]

    def daemon(self, name: str, topic: str, stub_url: str, triggers: int = 1) -> DaemonProcess:
        rules = [trigger("deposit-0", TARGET_DESTINATION)] + [
            trigger(f"deposit-{n}", f"treasury:{n}") for n in range(1, triggers)
        ]
        return DaemonProcess(
            self.workdir,
            name,
            bootstrap=self.bootstrap,
            topic=topic,
            stub_url=stub_url,
            triggers=rules,
            store_url=self.args.store_url,
        )

    async def runs(self, name: str, delay: float, in_flight: int) -> tuple[Rate, Rate]:
        """Workflow runs/s of the daemon and of bare aiohttp against a stub with `delay`."""
        count = self.args.matched
        topic, _ = await self.topic("matched", count, TARGET_DESTINATION)
        runs = itertools.count(1)
        async with StubProcess(delay) as stub:

            async def daemon_run() -> Rate:
                before = await stub.calls()
                # Its own store each time: one holding the last run's occurrences calls nothing.
                daemon = self.daemon(f"{name}-{next(runs)}", topic, stub.url)
                async with running(daemon, self.args.profile):
                    return await measure_progress(
                        stub.calls, before + count, self.args.max_seconds, daemon
                    )

            return await in_turn(
                daemon_run, lambda: bare_http(stub.url, count, in_flight), "bare aiohttp"
            )

    async def unmatched(self, name: str, triggers: int) -> Rate:
        topic, ends = await self.topic("unmatched", self.args.unmatched, "users:1234")
        return await self._drain(name, topic, ends, triggers)

    async def _drain(self, name: str, topic: str, ends: dict[int, int], triggers: int) -> Rate:
        """Events/s until the daemon's group has committed every record of `topic`."""
        async with StubProcess() as stub:
            daemon = self.daemon(name, topic, stub.url, triggers)
            async with (
                CommitWatcher(self.bootstrap, daemon.group_id, topic) as watcher,
                running(daemon, self.args.profile),
            ):
                return await measure_progress(
                    watcher.total, sum(ends.values()), self.args.max_seconds, daemon
                )

    async def bare_read(self) -> Rate:
        """The bare consumer's read of the unmatched topic (the ceiling of rows 2 and 7)."""
        topic, ends = await self.topic("unmatched", self.args.unmatched, "users:1234")
        return await bare_consume(self.bootstrap, topic, ends)

    async def clients(self) -> list[tuple[str, Rate]]:
        """Runs/s of the client alone with each engine, and of bare aiohttp, 64 at a time."""
        count = self.args.client_requests
        rates: list[tuple[str, Rate]] = []
        async with StubProcess() as stub:
            rates.append(("bare aiohttp", await bare_http(stub.url, count, 64)))
            rates.append(("httpx over aiohttp", await client_http(stub.url, count, 64, None)))
            for name, engine in other_transports(64).items():
                # httpx's own transport is much slower: fewer requests keep the run short.
                share = count // 4 if "own" in name else count
                rates.append((name, await client_http(stub.url, share, 64, engine)))
        return rates

    async def rss(self) -> Rate:
        topic, ends = await self.topic("rss", self.args.rss_records, "users:1234")
        return await self._drain("rss", topic, ends, 1)


# --- filters evaluated in full: a projection, and triggers no index answers ---------------------

# The unmatched events' postings are in USD/2 with an amount of 12,500: neither filter matches,
# and both are evaluated in full on every event.
PROJECTION_FILTER = "event.transactions[?postings[?asset=='EUR/2']] | length(@) > `0`"


def unindexed_filter(number: int) -> str:
    return f"length(event.transactions[?postings[?amount > `{100_000 + number}`]]) > `0`"


async def unmatched_with_filters(bench: Bench, name: str, filters: list[str]) -> Rate:
    """Events/s over the unmatched topic with one trigger per filter."""
    rules = [{**trigger(f"{name}-{n}", "none"), "filter": f} for n, f in enumerate(filters)]
    return await unmatched_with_triggers(bench, name, rules)


async def unmatched_with_triggers(bench: Bench, name: str, rules: list[dict[str, Any]]) -> Rate:
    """Events/s over the unmatched topic with `rules` as the daemon's triggers."""
    topic, ends = await bench.topic("unmatched", bench.args.unmatched, "users:1234")
    async with StubProcess() as stub:
        daemon = DaemonProcess(
            bench.workdir,
            name,
            bootstrap=bench.bootstrap,
            topic=topic,
            stub_url=stub.url,
            triggers=rules,
            store_url=bench.args.store_url,
        )
        async with (
            CommitWatcher(bench.bootstrap, daemon.group_id, topic) as watcher,
            running(daemon, bench.args.profile),
        ):
            return await measure_progress(
                watcher.total, sum(ends.values()), bench.args.max_seconds, daemon
            )


async def full_evaluation_rows(bench: Bench, only: set[str], one_trigger: Rate | None) -> list[Row]:
    """7: the projection filter against the bare consumer; 8: --unindexed triggers against one
    trigger (the unmatched row's, measured here when that row did not run)."""
    rows = []
    if "projection" in only:
        print("projection: ...", flush=True)
        rate, ceiling = await in_turn(
            lambda: unmatched_with_filters(bench, "projection", [PROJECTION_FILTER]),
            bench.bare_read,
            "bare aiokafka",
        )
        rows.append(ratio_row("7 projection filter, unmatched", rate, ceiling, 0.5, 0.7))
    if "unindexed" in only:
        count = bench.args.unindexed_triggers
        print(f"unindexed: {count:,} triggers ...", flush=True)
        one = one_trigger or await bench.unmatched("unmatched", 1)
        filters = [unindexed_filter(number) for number in range(count)]
        many = await unmatched_with_filters(bench, "unindexed", filters)
        cost = one.per_second / many.per_second
        rows.append(
            Row(
                f"8 {count:,} unindexed triggers",
                str(many),
                f"1 trigger: {one}",
                f"{cost:.2f}x cost",
                "reported",
                "",
            )
        )
        print(f"  daemon {many}", flush=True)
    return rows


def mixed_row(triggers: int, many: Rate, one_trigger: Rate) -> Row:
    # No commit within --max-seconds (a slow catalogue commits rarely) is an unbounded cost.
    cost = one_trigger.per_second / many.per_second if many.per_second else float("inf")
    return Row(
        f"4b {triggers:,} mixed triggers",
        str(many),
        f"1 trigger: {one_trigger}",
        f"{cost:.2f}x cost",
        "<= 2x the cost of one",
        "ok" if cost <= 2 else "MISSED",
    )


# --- the report -----------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    daemon: str
    ceiling: str
    ratio: str
    target: str
    verdict: str


def judge(value: float, minimum: float, aim: float, *, lower_is_better: bool = False) -> str:
    if lower_is_better:
        value, minimum, aim = -value, -minimum, -aim
    return "aim met" if value >= aim else "ok" if value >= minimum else "MISSED"


def ratio_row(scenario: str, daemon: Rate, ceiling: Rate, minimum: float, aim: float) -> Row:
    ratio = daemon.per_second / ceiling.per_second
    return Row(
        scenario,
        str(daemon),
        str(ceiling),
        f"{ratio:.2f}x",
        f">= {minimum}x, aim {aim}x",
        judge(ratio, minimum, aim),
    )


def print_table(rows: list[Row]) -> None:
    header = Row("scenario", "daemon", "ceiling", "ratio", "target", "verdict")
    widths = [max(len(getattr(r, f)) for r in [header, *rows]) for f in Row.__annotations__]
    for row in [header, *rows]:
        cells = [getattr(row, f).ljust(w) for f, w in zip(Row.__annotations__, widths, strict=True)]
        print("  ".join(cells).rstrip())


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; load average {load}"
    )


async def main(args: argparse.Namespace) -> None:
    only = set(args.only.split(",")) if args.only else set(SCENARIOS)
    print(f"machine: {machine()}", flush=True)
    rows: list[Row] = []
    runs: list[tuple[str, Rate]] = []  # each daemon run, for the footnotes
    with tempfile.TemporaryDirectory(prefix="td-bench-") as tmp:
        async with TansuBroker() as broker:
            bench = Bench(args, broker, Path(tmp))
            if "matched" in only:
                print("matched: ...", flush=True)
                rate, ceiling = await bench.runs("matched", 0.0, 64)
                rows.append(ratio_row(f"1 matched ({args.matched:,})", rate, ceiling, 0.3, 0.5))
                runs.append(("matched", rate))
            one_trigger: Rate | None = None
            if only & {"unmatched", "triggers", "mixed"}:
                print("unmatched: ...", flush=True)
                one_trigger, ceiling = await in_turn(
                    lambda: bench.unmatched("unmatched", 1), bench.bare_read, "bare aiokafka"
                )
                rows.append(
                    ratio_row(f"2 unmatched ({args.unmatched:,})", one_trigger, ceiling, 0.5, 0.7)
                )
                runs.append(("unmatched", one_trigger))
            if "latency" in only:
                print("latency: ...", flush=True)
                rate, ceiling = await bench.runs("latency", 0.020, 256)
                rows.append(ratio_row("3 latency 20 ms", rate, ceiling, 0.3, 0.5))
                runs.append(("latency", rate))
            if "triggers" in only and one_trigger is not None:
                print(f"triggers: {args.triggers:,} ...", flush=True)
                many = await bench.unmatched("triggers", args.triggers)
                cost = one_trigger.per_second / many.per_second
                rows.append(
                    Row(
                        f"4 {args.triggers:,} triggers",
                        str(many),
                        f"1 trigger: {one_trigger}",
                        f"{cost:.2f}x cost",
                        "<= 2x the cost of one",
                        "ok" if cost <= 2 else "MISSED",
                    )
                )
                runs.append(("triggers", many))
                print(f"  daemon {many}", flush=True)
            if "mixed" in only and one_trigger is not None:
                print(f"mixed: {args.triggers:,} triggers of four shapes ...", flush=True)
                mixed = [mixed_trigger(n) for n in range(args.triggers)]
                many = await unmatched_with_triggers(bench, "mixed", mixed)
                rows.append(mixed_row(args.triggers, many, one_trigger))
                runs.append(("mixed", many))
                print(f"  daemon {many}", flush=True)
            rows += await full_evaluation_rows(bench, only, one_trigger)
            if "rss" in only and args.rss_records:
                print(f"rss: {args.rss_records:,} records waiting ...", flush=True)
                rate = await bench.rss()
                peak = rate.peak_rss_mb or float("nan")
                rows.append(
                    Row(
                        f"5 peak RSS ({args.rss_records:,} waiting)",
                        f"{peak:.0f} MB",
                        f"read at {rate}",
                        "",
                        "< 250 MB",
                        "ok" if peak < 250 else "MISSED",
                    )
                )
            if "client" in only:
                print("client: ...", flush=True)
                clients = await bench.clients()
                bare = clients[0][1]
                for name, rate in clients[1:]:
                    rows.append(ratio_row(f"6 client: {name}", rate, bare, 0.3, 0.5))
                    print(f"  {name} {rate}", flush=True)
                print(f"  bare aiohttp {bare}", flush=True)
    print()
    print_table(rows)
    print(
        "peak RSS per run: "
        + ", ".join(f"{n} {r.peak_rss_mb:.0f} MB" for n, r in runs if r.peak_rss_mb)
    )
    for name, rate in runs:
        print(f"{name}: {rate.responsiveness()}")
    print(f"load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/throughput.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--matched", type=int, default=20_000, help="events for 1 and 3")
    parser.add_argument("--unmatched", type=int, default=200_000, help="events for 2 and 4")
    parser.add_argument("--triggers", type=int, default=10_000, help="triggers for 4 and 4b")
    parser.add_argument("--unindexed-triggers", type=int, default=1_000, help="triggers for 8")
    parser.add_argument("--rss-records", type=int, default=1_000_000, help="records for 5")
    parser.add_argument("--client-requests", type=int, default=20_000, help="requests for 6")
    parser.add_argument(
        "--max-seconds", type=float, default=90.0, help="stop a run after this long (partial)"
    )
    parser.add_argument(
        "--store-url",
        help="the daemon's store (default: a new SQLite file per run; sqlite:///:memory: "
        "leaves out the disk, a postgresql:// URL must name an empty database per run)",
    )
    parser.add_argument("--only", help=f"a comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--profile", type=Path, help="record every daemon run with py-spy here")
    args = parser.parse_args(argv)
    if args.profile is not None:
        if py_spy_command() is None:
            parser.error("--profile needs py-spy: .venv/bin/pip install py-spy")
        args.profile.mkdir(parents=True, exist_ok=True)
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
