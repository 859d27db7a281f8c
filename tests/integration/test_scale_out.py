"""Several replicas on one PostgreSQL database and one consumer group, as real processes:
a replica killed mid-stream, triggers changed through one replica's API, PostgreSQL
restarted under load. Slow: marked, and run in CI too.

Each replica calls its own stub orchestration API, so every call can be attributed to the
replica that made it: repeats from the crash window (calls the killed replica made whose
outcome it never wrote) are told apart from repeats between live replicas, which the
delivery guarantees do not allow.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from trigger_daemon.adapters.store import PoolLimits
from trigger_daemon.adapters.store.engine import create_engine
from trigger_daemon.core.triggers import yaml_trigger_id
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.postgres import PostgresCluster
from trigger_daemon.devtools.processes import DaemonProcess
from trigger_daemon.devtools.stub_orchestration import StubCall, StubOrchestration

from .conftest import daemon_settings, wait_until

pytestmark = pytest.mark.slow

PARTITIONS = 6
# Ordering keys: key k always goes to partition k % PARTITIONS. A replica works on at most
# one record per key at a time, so it has at most KEYS workflow calls in flight.
KEYS = 12
TRIGGERS = [
    {
        "name": "book-transaction",
        "event": "COMMITTED_TRANSACTIONS",
        "workflowID": "book",
        "vars": {"txid": "to_string(event.transactions[0].id)"},
    },
    {
        "name": "review-usd",
        "event": "COMMITTED_TRANSACTIONS",
        "filter": "event.transactions[0].postings[0].asset == 'USD/2'",
        "workflowID": "review",
        "vars": {"amount": "to_string(event.transactions[0].postings[0].amount)"},
    },
    {
        "name": "payment-succeeded",
        "event": "SAVED_PAYMENT",
        "filter": "event.status == 'SUCCEEDED'",
        "workflowID": "settle",
        "vars": {"payment": "event.id"},
    },
]
NAMES = [str(trigger["name"]) for trigger in TRIGGERS]
BOOK, REVIEW = yaml_trigger_id("book-transaction"), yaml_trigger_id("review-usd")

Record = tuple[int, bytes, bytes]  # partition, key, value


@pytest.fixture
async def topic6(broker: TansuBroker, topic: str) -> str:
    name = f"{topic}-6p"
    await broker.create_topics([name], partitions=PARTITIONS)
    return name


@pytest.fixture
async def stubs() -> AsyncIterator[dict[str, StubOrchestration]]:
    """Stub orchestration APIs by replica name (`stub_for` starts one); stopped at the end."""
    started: dict[str, StubOrchestration] = {}
    try:
        yield started
    finally:
        for stub in started.values():
            await stub.stop()


async def stub_for(stubs: dict[str, StubOrchestration], name: str) -> StubOrchestration:
    stub = StubOrchestration()
    await stub.start()
    stubs[name] = stub
    return stub


def replica_config(
    broker: TansuBroker, topic: str, group: str, store_url: str, stub_url: str
) -> dict[str, Any]:
    return daemon_settings(
        broker,
        topic,
        stub_url,
        store_url,
        kafka={"group_id": group, "session_timeout_ms": 3000, "heartbeat_interval_ms": 300},
        orchestration={
            "retry": {"max_attempts": 5, "initial_backoff_seconds": 0.05, "max_backoff_seconds": 1},
        },
        store={"poll_interval_seconds": 1.0},
        shutdown_grace_seconds=10,
        triggers=TRIGGERS,
    )


def transaction_records(count: int) -> list[Record]:
    """Distinct idempotency keys; every second transaction is in USD."""
    records = []
    for n in range(count):
        key = n % KEYS
        asset = "USD/2" if n % 2 == 0 else "EUR/2"
        event = events.committed_transaction(n, 1000 + n, asset=asset)
        records.append((key % PARTITIONS, f"account-{key}".encode(), events.encode(event)))
    return records


def expected_pairs(events_count: int) -> set[tuple[str, str]]:
    pairs = set()
    for n in range(events_count):
        event_id = f"COMMITTED_TRANSACTIONS:tx-main-{n}"
        pairs.add((BOOK, event_id))
        if n % 2 == 0:
            pairs.add((REVIEW, event_id))
    return pairs


async def produce_to(broker: TansuBroker, topic: str, records: list[Record]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        for partition, key, value in records:
            await producer.send(topic, value, key=key, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def database(store_url: str) -> AsyncIterator[AsyncEngine]:
    """The replicas' database, for the test to read (one connection for the whole test)."""
    engine = create_engine(store_url, pool=PoolLimits(pool_size=1, max_overflow=0))
    try:
        yield engine
    finally:
        await engine.dispose()


async def succeeded_count(db: AsyncEngine) -> int:
    query = text("SELECT count(*) FROM occurrences WHERE status = 'succeeded'")
    async with db.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def stored_trigger_ids(db: AsyncEngine) -> list[str]:
    async with db.connect() as conn:
        return [trigger_id for (trigger_id,) in await conn.execute(text("SELECT id FROM triggers"))]


async def stored_occurrences(db: AsyncEngine) -> list[tuple[str, str, str]]:
    """(trigger id, event id, status) of every stored occurrence."""
    async with db.connect() as conn:
        rows = await conn.execute(text("SELECT trigger_id, event_id, status FROM occurrences"))
        return [(trigger_id, event_id, status) for trigger_id, event_id, status in rows]


async def wait_all_succeeded(db: AsyncEngine, count: int, within_seconds: float) -> None:
    async def done() -> bool:
        return await succeeded_count(db) >= count

    await wait_until(done, within_seconds=within_seconds, what=f"{count} succeeded occurrences")


def callers_by_key(stubs: Iterable[tuple[str, StubOrchestration]]) -> dict[str, list[str]]:
    """Idempotency-Key → the replica of each call made with it."""
    seen: dict[str, list[str]] = collections.defaultdict(list)
    for name, stub in stubs:
        for call in stub.calls:
            assert call.idempotency_key is not None
            seen[call.idempotency_key].append(name)
    return seen


async def start_all(replicas: Iterable[DaemonProcess]) -> None:
    started = list(replicas)
    for replica in started:
        replica.start()
    await asyncio.gather(*(replica.wait_ready() for replica in started))


@pytest.mark.timeout(240)  # typically 45 s; each wait inside has its own bound
async def test_replicas_share_the_stream_and_a_killed_one_loses_nothing_and_repeats_little(
    broker: TansuBroker,
    postgres: PostgresCluster,
    stubs: dict[str, StubOrchestration],
    topic6: str,
    tmp_path: Path,
) -> None:
    events_count = 3000
    wanted = expected_pairs(events_count)
    store_url = postgres.new_database()
    replicas: dict[str, DaemonProcess] = {}
    for name in ("a", "b", "c", "d"):
        stub = await stub_for(stubs, name)
        config = replica_config(broker, topic6, f"{topic6}-group", store_url, stub.url)
        replicas[name] = DaemonProcess(tmp_path, config, name=name)

    def calls_made() -> int:
        return sum(len(stub.calls) for stub in stubs.values())

    async with contextlib.AsyncExitStack() as cleanup:
        for replica in replicas.values():
            cleanup.callback(replica.stop_quietly)
        db = await cleanup.enter_async_context(database(store_url))
        # Three replicas start at once on a new database with the same YAML file.
        await start_all(replicas[name] for name in ("a", "b", "c"))
        assert sorted(await stored_trigger_ids(db)) == sorted(map(yaml_trigger_id, NAMES))
        reconciled = [replicas[name].events("triggers.reconciled")[0] for name in "abc"]
        assert sorted((line["added"], line["unchanged"]) for line in reconciled) == [
            (0, 3),
            (0, 3),
            (3, 0),
        ]
        started = time.monotonic()
        await produce_to(broker, topic6, transaction_records(events_count))
        await wait_until(
            lambda: len(stubs["a"].calls) >= 200 and calls_made() >= len(wanted) // 4,
            within_seconds=60,
            what="replica a to be busy",
        )
        replicas["a"].kill()
        killed_at_calls = calls_made()
        await start_all([replicas["d"]])
        await wait_all_succeeded(db, len(wanted), within_seconds=120)
        finished = time.monotonic() - started

        survivors = [replicas[name] for name in ("b", "c", "d")]
        for replica in survivors:
            assert replica.returncode is None, replica.tail()
        exit_codes = await asyncio.gather(*(replica.terminate() for replica in survivors))
        stored = await stored_occurrences(db)

    assert exit_codes == [0, 0, 0]
    assert len(stored) == len(wanted)
    assert {(trigger_id, event_id) for trigger_id, event_id, _ in stored} == wanted
    assert {status for _, _, status in stored} == {"succeeded"}

    callers = callers_by_key(stubs.items())
    assert set(callers) == {f"{trigger_id}:{event_id}" for trigger_id, event_id in wanted}
    repeated = {key: who for key, who in callers.items() if len(who) > 1}
    crash_window = {key: who for key, who in repeated.items() if "a" in who}
    between_live = {key: who for key, who in repeated.items() if "a" not in who}
    figures = (
        f"{events_count} events, {len(wanted)} pairs, {calls_made()} calls "
        f"({', '.join(f'{name} {len(stub.calls)}' for name, stub in stubs.items())}); "
        f"a killed after {killed_at_calls} calls; repeated keys: {len(crash_window)} in the "
        f"crash window, {len(between_live)} between live replicas; all succeeded "
        f"{finished:.1f}s after the first event"
    )
    print(figures)
    # The killed replica had at most one call in flight per ordering key, each repeated once.
    assert len(crash_window) <= KEYS, figures
    assert all(sorted(who) in (["a", "b"], ["a", "c"], ["a", "d"]) for who in crash_window.values())
    assert between_live == {}, figures


async def test_a_trigger_created_or_deleted_through_one_replica_applies_on_another_within_2s(
    broker: TansuBroker,
    postgres: PostgresCluster,
    stubs: dict[str, StubOrchestration],
    topic: str,
    tmp_path: Path,
) -> None:
    store_url = postgres.new_database()
    stub = await stub_for(stubs, "shared")
    # a serves the API and consumes a topic nobody writes to; b consumes the events.
    idle_topic = f"{topic}-idle"
    await broker.create_topics([idle_topic])
    a_config = replica_config(broker, idle_topic, f"{topic}-a", store_url, stub.url)
    b_config = replica_config(broker, topic, f"{topic}-b", store_url, stub.url)
    a, b = DaemonProcess(tmp_path, a_config, "a"), DaemonProcess(tmp_path, b_config, "b")

    def calls_for(workflow_id: str) -> list[StubCall]:
        return [call for call in stub.calls if call.workflow_id == workflow_id]

    async def payment(status: str) -> dict[str, Any]:
        event = events.saved_payment(status, 5)
        await produce_to(broker, topic, [(0, b"payments", events.encode(event))])
        return event

    async def marker() -> None:
        """A payment the YAML trigger runs `settle` for: once it is called, b has handled
        every event produced before it (one key, one partition: in order)."""
        before = len(calls_for("settle"))
        await payment("SUCCEEDED")
        await wait_until(lambda: len(calls_for("settle")) > before, what="the marker event")

    try:
        await start_all([a, b])
        await marker()  # b owns the partition and is consuming
        async with httpx.AsyncClient(base_url=a.api_url) as api:
            created = await api.post(
                "/v2/triggers",
                json={
                    "event": "SAVED_PAYMENT",
                    "workflowID": "api-made",
                    "vars": {"p": "event.id"},
                },
            )
            assert created.status_code == 201, created.text
            created_at = time.time()
            await asyncio.sleep(2.0)
            pending = await payment("PENDING")
            await wait_until(lambda: len(calls_for("api-made")) == 1, what="the trigger on b")
            assert calls_for("api-made")[0].body == {"p": pending["payload"]["id"]}

            deleted = await api.delete(f"/v2/triggers/{created.json()['data']['id']}")
            assert deleted.status_code == 204
            deleted_at = time.time()
            await asyncio.sleep(2.0)
            await payment("PENDING")
            await marker()
        assert len(calls_for("api-made")) == 1
        # b's own account of when it picked the changes up (same clock: same machine).
        refreshed = [
            datetime.fromisoformat(line["timestamp"]).timestamp()
            for line in b.events("triggers.refreshed")
        ]
        delays = [
            min(t for t in refreshed if t > created_at) - created_at,
            min(t for t in refreshed if t > deleted_at) - deleted_at,
        ]
        print(f"b applied the creation after {delays[0]:.2f}s, the deletion after {delays[1]:.2f}s")
        assert max(delays) < 2.0
    finally:
        a.stop_quietly()
        b.stop_quietly()


@pytest.mark.timeout(180)  # typically 25 s
async def test_a_postgresql_restart_under_load_loses_nothing_and_the_daemon_stays_up(
    broker: TansuBroker,
    stubs: dict[str, StubOrchestration],
    topic6: str,
    tmp_path: Path,
) -> None:
    events_count = 1500
    wanted = expected_pairs(events_count)
    stub = await stub_for(stubs, "only")
    stub.delay_seconds = 0.005
    async with contextlib.AsyncExitStack() as cleanup:
        cluster = await asyncio.to_thread(PostgresCluster.start)  # this test restarts it
        cleanup.push_async_callback(asyncio.to_thread, cluster.stop)
        store_url = await asyncio.to_thread(cluster.new_database)
        config = replica_config(broker, topic6, f"{topic6}-group", store_url, stub.url)
        daemon = DaemonProcess(tmp_path, config)
        cleanup.callback(daemon.stop_quietly)
        db = await cleanup.enter_async_context(database(store_url))

        await start_all([daemon])
        await produce_to(broker, topic6, transaction_records(events_count))
        await wait_until(lambda: len(stub.calls) >= len(wanted) // 4, what="progress")
        await asyncio.to_thread(cluster.pause)
        await asyncio.sleep(3)
        await asyncio.to_thread(cluster.resume)
        resumed = time.monotonic()
        await wait_all_succeeded(db, len(wanted), within_seconds=90)
        caught_up = time.monotonic() - resumed

        assert daemon.returncode is None, daemon.tail()
        assert await daemon.terminate() == 0
        stored = await stored_occurrences(db)

    assert {(trigger_id, event_id) for trigger_id, event_id, _ in stored} == wanted
    assert len(stored) == len(wanted)
    assert {status for _, _, status in stored} == {"succeeded"}
    repeated = [key for key, who in callers_by_key([("only", stub)]).items() if len(who) > 1]
    print(
        f"{len(stub.calls)} calls for {len(wanted)} pairs; {len(repeated)} repeated keys; "
        f"all succeeded {caught_up:.1f}s after PostgreSQL was back"
    )
    # Calls answered while their outcome could not be written are made again, same key.
    assert len(repeated) <= KEYS
