"""What the daemon writes to Kafka: one producer (`KafkaPublisher`) behind the dead-letter and
outcome-event sinks of `trigger_daemon.ports`.

A send is retried while aiokafka calls the error retriable; then it
raises BrokerError, so the record is handled again later and nothing is dropped silently. A
dead letter keeps the record's value, key and headers and adds `dead-letter-*` headers saying
why and where it came from.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from trigger_daemon.adapters.kafka.connection import KafkaConnection, start_client
from trigger_daemon.errors import BrokerError
from trigger_daemon.ports import DeadLetter

DEAD_LETTER_HEADER_PREFIX = "dead-letter-"
_PUBLISH_ATTEMPTS = 5


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
        await start_client(self._producer, "producer")
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
    """Why the letter was written and where its record came from, as `dead-letter-*` headers:
    reason, detail, source topic/partition/offset, the trigger id when there is one, then the
    letter's extra headers."""
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
