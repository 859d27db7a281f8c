"""What the daemon writes to Kafka: one producer (`KafkaPublisher`, retrying by
`PUBLISH_RETRY_POLICY`) behind the dead-letter and outcome-event sinks of `trigger_daemon.ports`.

A dead letter keeps the record's value, key and headers and adds `dead-letter-*` headers saying
why it was written and where the record came from.
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
from trigger_daemon.core.retry import RetryPolicy, backoff_delay
from trigger_daemon.errors import BrokerError
from trigger_daemon.ports import DeadLetter

DEAD_LETTER_HEADER_PREFIX = "dead-letter-"
# Five tries; the waits between them are drawn (full jitter) up to 0.8, 1.6, 3.2 and 6.4 s:
# about 6 s in all on average, at most 12 s.
PUBLISH_RETRY_POLICY = RetryPolicy(
    max_attempts=5, initial_backoff_seconds=0.8, max_backoff_seconds=6.4
)


class KafkaPublisher:
    """The one producer for what the daemon writes to Kafka: dead letters, outcome events.

    A send is retried by `PUBLISH_RETRY_POLICY` while aiokafka calls the error retriable, then
    raises BrokerError: the record is handled again later, so nothing is dropped silently.
    """

    def __init__(self, connection: KafkaConnection) -> None:
        self._servers = connection.bootstrap_servers
        # Large enough for a record near the broker's 1 MB limit plus the added headers.
        self._producer = AIOKafkaProducer(
            acks="all", max_request_size=4 * 1024 * 1024, **connection.client_options()
        )

    async def __aenter__(self) -> Self:
        await start_client(self._producer, "producer", self._servers)
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
        policy = PUBLISH_RETRY_POLICY
        for attempt in range(1, policy.max_attempts + 1):
            try:
                await self._producer.send_and_wait(
                    topic, value=value, key=key, headers=list(headers)
                )
                return
            except KafkaError as exc:
                if not exc.retriable or attempt == policy.max_attempts:
                    raise BrokerError(f"publish to {topic} failed: {exc}", retriable=True) from exc
                await asyncio.sleep(backoff_delay(policy, failed_attempts=attempt))


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
