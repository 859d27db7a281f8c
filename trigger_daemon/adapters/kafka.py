"""Kafka on aiokafka: the consumer-group source, commits, and the dead-letter producer.

Converts aiokafka records into `ports.SourceRecord` and its errors into `BrokerError`.
Imports only ports, errors and aiokafka.
"""

from __future__ import annotations

import asyncio
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

from trigger_daemon.errors import BrokerError
from trigger_daemon.ports import DeadLetter, SourceRecord

log = structlog.get_logger(__name__)

DEAD_LETTER_HEADER_PREFIX = "dead-letter-"
_PUBLISH_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """What both the consumer and the producer need to reach the cluster."""

    bootstrap_servers: str
    client_id: str = "trigger-daemon"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None

    def client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.sasl_mechanism is not None:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options


RevocationHandler = Callable[[set[tuple[str, int]]], Awaitable[None]]


class KafkaSource:
    """A consumer-group member that commits only what the pipeline says is done.

    Before partitions move to another member (a rebalance), the revocation handler runs: the
    pipeline finishes or drops the work of those partitions and commits, so the next owner
    starts where this one stopped.
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
        try:
            await self._consumer.start()
        except KafkaError as exc:
            await self._consumer.stop()
            raise BrokerError(f"cannot start the Kafka consumer: {exc}", retriable=True) from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # stop() leaves the group at once, so a peer takes the partitions without a timeout.
        await self._consumer.stop()

    def set_revocation_handler(self, handler: RevocationHandler) -> None:
        self._revocation_handler = handler

    async def _revoked(self, partitions: set[tuple[str, int]]) -> None:
        if self._revocation_handler is not None and partitions:
            await self._revocation_handler(partitions)

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


class _RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._source._revoked({(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info(
            "partitions.assigned",
            partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in assigned),
        )


def _to_source_record(message: Any) -> SourceRecord:
    return SourceRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=tuple((name, value or b"") for name, value in (message.headers or ())),
        timestamp_ms=message.timestamp,
    )


class KafkaDeadLetters:
    """Publishes unprocessable records and exhausted calls, keeping value, key and headers."""

    def __init__(self, connection: KafkaConnection, topic: str) -> None:
        self._topic = topic
        self._producer = AIOKafkaProducer(
            acks="all", max_request_size=4 * 1024 * 1024, **connection.client_options()
        )

    async def __aenter__(self) -> Self:
        try:
            await self._producer.start()
        except KafkaError as exc:
            await self._producer.stop()
            raise BrokerError(f"cannot start the Kafka producer: {exc}", retriable=True) from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    async def publish(self, letter: DeadLetter) -> None:
        headers = [*letter.record.headers, *dead_letter_headers(letter)]
        for attempt in range(1, _PUBLISH_ATTEMPTS + 1):
            try:
                await self._producer.send_and_wait(
                    self._topic,
                    value=letter.record.value,
                    key=letter.record.key,
                    headers=headers,
                )
                return
            except KafkaError as exc:
                if not exc.retriable or attempt == _PUBLISH_ATTEMPTS:
                    raise BrokerError(
                        f"dead-letter publish to {self._topic} failed: {exc}",
                        retriable=True,
                    ) from exc
                await asyncio.sleep(0.2 * 2**attempt)


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
