"""Real parts for integration tests: a Tansu broker per session (each test on its own
topics), a stub orchestration API over real HTTP per test, and helpers to drive them."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from trigger_daemon.adapters.store import SqlStore, open_store
from trigger_daemon.config import LoadedConfig, Settings
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.postgres import PostgresCluster
from trigger_daemon.devtools.stub_orchestration import StubOrchestration
from trigger_daemon.triggers.catalog import TriggerCatalog


@asynccontextmanager
async def answering(answer: bytes, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """A server on 127.0.0.1 that reads each request's head, answers `answer` verbatim and
    closes the connection (a misbehaving API or token endpoint); its URL. With `tls`, it
    speaks HTTPS."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture(scope="session")
def broker() -> Iterator[TansuBroker]:
    tansu = TansuBroker()
    tansu.start()
    try:
        yield tansu
    finally:
        tansu.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A private PostgreSQL cluster per session (each test makes its own database).
    Fails, never skips, when PostgreSQL is not installed."""
    cluster = PostgresCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def stub() -> AsyncIterator[StubOrchestration]:
    async with StubOrchestration() as server:
        yield server


@pytest.fixture
async def topic(broker: TansuBroker) -> str:
    """A one-partition topic no other test uses (Tansu would auto-create four partitions)."""
    name = f"ledger-{uuid.uuid4().hex[:12]}"
    await broker.create_topics([name], partitions=1)
    return name


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    """A fresh SQLite store per test (test_store.py runs every backend with its own)."""
    opened = await open_store(f"sqlite:///{tmp_path}/store.db")
    yield opened
    await opened.close()


@pytest.fixture
async def catalog(store: SqlStore) -> TriggerCatalog:
    catalog = TriggerCatalog(store)
    await catalog.refresh()
    return catalog


def kafka_settings(broker: TansuBroker, topic: str, **overrides: Any) -> dict[str, Any]:
    """The `kafka` section of a test daemon: one topic, no dead-letter topic, and a short
    session timeout (Tansu's group join takes about half of it)."""
    return {
        "bootstrap_servers": broker.bootstrap_servers,
        "topics": [topic],
        "group_id": f"{topic}-group",
        "dead_letter_topic": None,
        "session_timeout_ms": 2000,
        "heartbeat_interval_ms": 500,
    } | overrides


def daemon_settings(
    broker: TansuBroker, topic: str, stub_url: str, store_url: str, **sections: Any
) -> dict[str, Any]:
    """A test daemon's settings, as its YAML config file holds them: the `kafka_settings` of
    `topic`, the stub orchestration API at `stub_url` behind the gateway path a Formance
    stack serves it on, the store at `store_url` and the API on a free port. Each keyword is
    a top-level section: a dict is merged into the section already there
    (`kafka={"group_id": ...}`), anything else sets it (`triggers=[...]`)."""
    settings: dict[str, Any] = {
        "kafka": kafka_settings(broker, topic),
        "orchestration": {"base_url": f"{stub_url}/api/orchestration"},
        "store": {"url": store_url},
        "api": {"port": 0},
    }
    for name, section in sections.items():
        present = settings.get(name)
        merge = isinstance(present, dict) and isinstance(section, dict)
        settings[name] = present | section if merge else section
    return settings


def in_process(settings: dict[str, Any]) -> LoadedConfig:
    """`settings` as the daemon loads them, for a `Daemon` run inside the test (no file, and
    no TRIGGER_DAEMON_ variables of the environment)."""
    return LoadedConfig(settings=Settings.model_validate(settings), path=None)


async def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    headers: list[tuple[str, bytes]] | None = None,
    key: bytes | None = None,
    max_request_size: int = 1024 * 1024,
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=max_request_size
    )
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def produce_many(
    bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]
) -> None:
    """Publish (key, value) pairs quickly: batched sends, one flush."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def read_all(
    bootstrap: str, topic: str, expected: int, within_seconds: float = 20
) -> list[Any]:
    """Every record of partition 0 of `topic`, once at least `expected` are there."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        records: list[Any] = []
        deadline = time.monotonic() + within_seconds
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500)
            records.extend(batch.get(tp, []))
        return records
    finally:
        await consumer.stop()


async def committed_offset(bootstrap: str, group_id: str, topic: str, partition: int = 0) -> int:
    """The group's committed offset (aiokafka's admin cannot decode Tansu's answer)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        return int(await consumer.committed(tp) or 0)
    finally:
        await consumer.stop()


async def wait_until(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    within_seconds: float = 20,
    what: str = "condition",
    interval: float = 0.05,
) -> None:
    deadline = time.monotonic() + within_seconds
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)
