"""Kafka on aiokafka: the consumer-group source, commits, and the producer of dead letters
and outcome events.

Converts aiokafka records into `ports.SourceRecord` and its errors into `BrokerError`, and
keeps the consumer-lag gauge. Imports only ports, errors, observability (metrics), aiokafka and
pydantic's SecretStr (secrets stay out of reprs).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import structlog
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.errors import KafkaError
from prometheus_client import Gauge
from pydantic import SecretStr

from trigger_daemon.errors import BrokerError
from trigger_daemon.observability import metrics
from trigger_daemon.ports import DeadLetter, SourceRecord

log = structlog.get_logger(__name__)

DEAD_LETTER_HEADER_PREFIX = "dead-letter-"
# aiokafka's SCRAM client raises these, not a KafkaError, when the broker refuses the login
# ("Server sent wrong signature!", or KeyError 'v' on an `e=` answer).
SASL_LOGIN_FAILURES = (ValueError, KeyError)
SASL_REJECTED = "the broker refused the SASL login (check sasl_username and sasl_password)"
_PUBLISH_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """What both the consumer and the producer need to reach the cluster."""

    bootstrap_servers: str
    client_id: str = "trigger-daemon"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None  # with ssl_keyfile: a client certificate (mTLS)
    ssl_keyfile: str | None = None
    ssl_key_password: SecretStr | None = None

    def client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = self._ssl_context()
        if self.sasl_mechanism is not None:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            password = self.sasl_password
            options["sasl_plain_password"] = password.get_secret_value() if password else None
        return options

    def _ssl_context(self) -> ssl.SSLContext:
        """Verifies the brokers against `ssl_cafile` (or the system's CAs); presents the client
        certificate when one is configured. A file that cannot be read is a BrokerError naming
        the setting, never a traceback."""
        try:
            context = ssl.create_default_context(cafile=self.ssl_cafile)
            if self.ssl_certfile:
                password = self.ssl_key_password
                context.load_cert_chain(
                    self.ssl_certfile,
                    self.ssl_keyfile,
                    password=password.get_secret_value() if password else None,
                )
        except (OSError, ssl.SSLError) as exc:
            detail = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
            raise BrokerError(
                "kafka TLS: cannot load ssl_cafile/ssl_certfile/ssl_keyfile "
                f"(is the key password right?): {detail}",
                retriable=False,
            ) from None
        return context


RevocationHandler = Callable[[set[tuple[str, int]]], Awaitable[None]]


class KafkaSource:
    """A consumer-group member that commits only what the pipeline says is done.

    Before partitions move to another member (a rebalance), the revocation handler runs: the
    pipeline finishes or drops the work of those partitions and commits, so the next owner
    starts where this one stopped.

    After each fetch it sets `consumer_lag` for its partitions: the high-water mark of the last
    fetch answer minus its position (Tansu's `end_offsets` counts batches, not records).
    """

    def __init__(
        self,
        connection: KafkaConnection,
        topics: Sequence[str],
        group_id: str,
        auto_offset_reset: str = "earliest",
        max_records: int = 500,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
    ) -> None:
        self._topics = list(topics)
        self._max_records = max_records
        self._revocation_handler: RevocationHandler | None = None
        self._joined = False
        # labels() is slow: one labelled gauge per partition, made when first needed.
        self._lag_gauges: dict[TopicPartition, Gauge] = {}
        self._consumer = AIOKafkaConsumer(
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            **connection.client_options(),
        )

    async def __aenter__(self) -> Self:
        self._consumer.subscribe(self._topics, listener=_RebalanceListener(self))
        await _start(self._consumer, "consumer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # stop() leaves the group at once, so a peer takes the partitions without a timeout.
        await self._consumer.stop()
        self._forget_lag(set(self._lag_gauges))

    def set_revocation_handler(self, handler: RevocationHandler) -> None:
        self._revocation_handler = handler

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        # Another member reports these partitions' lag from now on: no stale value here.
        self._forget_lag(revoked)
        partitions = {(tp.topic, tp.partition) for tp in revoked}
        if self._revocation_handler is not None and partitions:
            await self._revocation_handler(partitions)

    def _assigned(self, assigned: set[TopicPartition]) -> None:
        self._joined = True
        # Fetches between the revocation and now still saw the old assignment.
        self._forget_lag(set(self._lag_gauges) - assigned)

    def joined(self) -> bool:
        """True once this member has joined its group, even with no partition assigned (more
        members than partitions). It stays true through later rebalances, which aiokafka
        rejoins by itself."""
        return self._joined

    def assigned(self) -> set[tuple[str, int]]:
        return {(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def pause(self) -> None:
        """Stop fetching (heartbeats go on, so the group keeps this member)."""
        self._consumer.pause(*self._consumer.assignment())

    def resume(self) -> None:
        self._consumer.resume(*self._consumer.assignment())

    async def fetch(
        self, timeout_seconds: float
    ) -> Mapping[tuple[str, int], Sequence[SourceRecord]]:
        try:
            batches = await self._consumer.getmany(
                timeout_ms=int(timeout_seconds * 1000), max_records=self._max_records
            )
        except KafkaError as exc:
            raise BrokerError(f"fetch failed: {exc}", retriable=exc.retriable) from exc
        await self._record_lag()
        return {
            (tp.topic, tp.partition): [_to_source_record(message) for message in messages]
            for tp, messages in batches.items()
            if messages
        }

    async def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        if not offsets:
            return
        try:
            await self._consumer.commit(
                {
                    TopicPartition(topic, partition): offset
                    for (topic, partition), offset in offsets.items()
                }
            )
        except KafkaError as exc:
            raise BrokerError(f"commit failed: {exc}", retriable=exc.retriable) from exc

    async def caught_up(self) -> bool:
        assignment = self._consumer.assignment()
        if not assignment:
            return False
        for tp in assignment:
            highwater = self._consumer.highwater(tp)
            if highwater is None or await self._consumer.position(tp) < highwater:
                return False
        return True

    async def _record_lag(self) -> None:
        """Once per fetch, not per record. A partition no fetch answer has reached yet (just
        assigned) has no high-water mark and keeps no value until one has."""
        # Read before any await: highwater() asserts that the partition is still assigned.
        highwaters = {tp: self._consumer.highwater(tp) for tp in self._consumer.assignment()}
        for tp, highwater in highwaters.items():
            if highwater is None:
                continue
            try:
                # Returns at once: a fetch answer came, so the position is known.
                position = await self._consumer.position(tp)
            except KafkaError:
                continue  # revoked meanwhile; a metric is not worth failing the fetch for
            gauge = self._lag_gauges.get(tp)
            if gauge is None:
                gauge = metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition))
                self._lag_gauges[tp] = gauge
            gauge.set(max(0, highwater - position))

    def _forget_lag(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            if self._lag_gauges.pop(tp, None) is not None:
                metrics.CONSUMER_LAG.remove(tp.topic, str(tp.partition))


class _RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._source._revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Runs after every join, with an empty set too when there is no partition for us.
        self._source._assigned(assigned)
        log.info(
            "partitions.assigned",
            partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in assigned),
        )


async def _start(client: Any, role: str) -> None:
    """Start an aiokafka consumer or producer, or stop it and raise BrokerError: retriable for
    the broker's own errors, not for a refused SASL login (aiokafka raises plain errors there)."""
    try:
        await client.start()
    except KafkaError as exc:
        await client.stop()
        raise BrokerError(f"cannot start the Kafka {role}: {exc}", retriable=True) from exc
    except SASL_LOGIN_FAILURES as exc:
        await client.stop()
        raise BrokerError(
            f"cannot start the Kafka {role}: {SASL_REJECTED}", retriable=False
        ) from exc


def _to_source_record(message: Any) -> SourceRecord:
    # Positional: one is built per record, and keywords cost a third more.
    return SourceRecord(
        message.topic,
        message.partition,
        message.offset,
        message.key,
        message.value,
        tuple((name, value or b"") for name, value in message.headers) if message.headers else (),
        message.timestamp,
    )


class KafkaPublisher:
    """The one producer for what the daemon writes to Kafka: dead letters, outcome events.

    A send is retried while the error is retriable, then raises BrokerError: the record is
    handled again later, so nothing is dropped silently.
    """

    def __init__(self, connection: KafkaConnection) -> None:
        # Large enough for a record near the broker's 1 MB limit plus the added headers.
        self._producer = AIOKafkaProducer(
            acks="all", max_request_size=4 * 1024 * 1024, **connection.client_options()
        )

    async def __aenter__(self) -> Self:
        await _start(self._producer, "producer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        for attempt in range(1, _PUBLISH_ATTEMPTS + 1):
            try:
                await self._producer.send_and_wait(
                    topic, value=value, key=key, headers=list(headers)
                )
                return
            except KafkaError as exc:
                if not exc.retriable or attempt == _PUBLISH_ATTEMPTS:
                    raise BrokerError(f"publish to {topic} failed: {exc}", retriable=True) from exc
                await asyncio.sleep(0.2 * 2**attempt)


class KafkaDeadLetters:
    """Unprocessable records and exhausted calls, keeping their value, key and headers."""

    def __init__(self, publisher: KafkaPublisher, topic: str) -> None:
        self._publisher = publisher
        self._topic = topic

    async def publish(self, letter: DeadLetter) -> None:
        await self._publisher.send(
            self._topic,
            letter.record.value,
            key=letter.record.key,
            headers=[*letter.record.headers, *dead_letter_headers(letter)],
        )


class KafkaOutcomeEvents:
    """SUCCEEDED_TRIGGER / FAILED_TRIGGER envelopes, keyed by trigger id, as Formance emits."""

    def __init__(self, publisher: KafkaPublisher, topic: str) -> None:
        self._publisher = publisher
        self._topic = topic

    async def publish(self, event: Mapping[str, Any], key: str) -> None:
        value = json.dumps(event, separators=(",", ":")).encode()
        await self._publisher.send(self._topic, value, key=key.encode())


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    record = letter.record
    fields = {
        "reason": letter.reason,
        "detail": letter.detail,
        "source-topic": record.topic,
        "source-partition": str(record.partition),
        "source-offset": str(record.offset),
        **({"trigger-id": letter.trigger_id} if letter.trigger_id else {}),
        **letter.extra_headers,
    }
    return [(DEAD_LETTER_HEADER_PREFIX + name, value.encode()) for name, value in fields.items()]
