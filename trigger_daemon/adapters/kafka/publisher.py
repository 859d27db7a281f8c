"""What the daemon writes to Kafka: one producer (`KafkaPublisher`, retrying by
`PUBLISH_RETRY_POLICY`) behind the dead-letter and outcome-event sinks of `trigger_daemon.ports`.

A dead letter keeps the record's value, key and headers and adds `dead-letter-*` headers saying
why it was written and where the record came from.

A message the producer or the broker refuses as too large would be refused on every try and
hold its record up for ever, so it goes out smaller instead: a dead letter with those headers
alone, an outcome event with its error cut.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError

from trigger_daemon.adapters.kafka.connection import KafkaConnection, start_client
from trigger_daemon.core.retry import RetryPolicy, backoff_delay
from trigger_daemon.errors import BrokerError
from trigger_daemon.ports import DeadLetter

log = structlog.get_logger(__name__)

DEAD_LETTER_HEADER_PREFIX = "dead-letter-"
# An API's error message can run to megabytes: a dead letter's detail header carries this much
# of it, and so does an outcome event too large for its topic. The occurrence keeps it whole.
ERROR_TEXT_MAX_BYTES = 4096
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
            except (MessageSizeTooLargeError, RecordListTooLargeError) as exc:
                raise TooLargeForTopic(f"publish to {topic} refused: {exc}") from exc
            except KafkaError as exc:
                if not exc.retriable or attempt == policy.max_attempts:
                    raise BrokerError(f"publish to {topic} failed: {exc}", retriable=True) from exc
                await asyncio.sleep(backoff_delay(policy, failed_attempts=attempt))


class TooLargeForTopic(BrokerError):
    """The producer or the broker refused a message as larger than it accepts."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=False)


class KafkaDeadLetters:
    """Unprocessable records and exhausted calls, keeping their value, key and headers.

    A letter too large for the topic (a record near the broker's limit plus the added headers)
    would be refused on every try; it is published with an empty value and without the record's
    headers instead, and a `dead-letter-omitted` header says so. The source offset names the
    record."""

    def __init__(self, publisher: KafkaPublisher, topic: str) -> None:
        self._publisher = publisher
        self._topic = topic

    async def publish(self, letter: DeadLetter) -> None:
        record, headers = letter.record, dead_letter_headers(letter)
        try:
            await self._publisher.send(
                self._topic, record.value, key=record.key, headers=[*record.headers, *headers]
            )
        except TooLargeForTopic as exc:
            omitted = (
                f"the record's value ({len(record.value or b'')} bytes) and its "
                f"{len(record.headers)} headers: {exc}"
            )
            log.warning(
                "record.dead_letter_too_large",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                omitted=omitted,
            )
            headers.append((DEAD_LETTER_HEADER_PREFIX + "omitted", omitted.encode()))
            await self._publisher.send(self._topic, b"", key=record.key, headers=headers)


class KafkaOutcomeEvents:
    """SUCCEEDED_TRIGGER / FAILED_TRIGGER envelopes, keyed by trigger id, as Formance emits."""

    def __init__(self, publisher: KafkaPublisher, topic: str) -> None:
        self._publisher = publisher
        self._topic = topic

    async def publish(self, event: Mapping[str, Any], key: str) -> None:
        try:
            await self._publisher.send(self._topic, _json(event), key=key.encode())
        except TooLargeForTopic:
            # Only a FAILED_TRIGGER's error can make an event this large.
            error = event["payload"].get("error")
            if not isinstance(error, str):
                raise
            cut = {
                **event,
                "payload": {**event["payload"], "error": _cut(error, ERROR_TEXT_MAX_BYTES)},
            }
            log.warning(
                "outcome_event.error_cut",
                occurrence_id=event["payload"].get("id"),
                error_bytes=len(error.encode("utf-8", "replace")),
            )
            await self._publisher.send(self._topic, _json(cut), key=key.encode())


def _json(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """Why the letter was written and where its record came from, as `dead-letter-*` headers:
    reason, detail, source topic/partition/offset, the trigger id when there is one, then the
    letter's extra headers."""
    record = letter.record
    fields = {
        "reason": letter.reason,
        "detail": _cut(letter.detail, ERROR_TEXT_MAX_BYTES),
        "source-topic": record.topic,
        "source-partition": str(record.partition),
        "source-offset": str(record.offset),
        **({"trigger-id": letter.trigger_id} if letter.trigger_id else {}),
        **letter.extra_headers,
    }
    return [(DEAD_LETTER_HEADER_PREFIX + name, value.encode()) for name, value in fields.items()]


def _cut(text: str, max_bytes: int) -> str:
    """`text`, cut to at most `max_bytes` of UTF-8 on a character boundary, saying so."""
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= max_bytes:
        return text
    note = f"… (cut from {len(encoded)} bytes)"
    kept = encoded[: max_bytes - len(note.encode())].decode("utf-8", "ignore")
    return kept + note
