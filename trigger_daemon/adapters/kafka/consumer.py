"""The consumer-group source: `KafkaSource`, the `ports.Source` the pipeline reads from.

It commits only the offsets the pipeline hands it, runs the pipeline's revocation handler before
partitions move to another member, converts aiokafka records into `ports.SourceRecord` and its
errors into `BrokerError`, and keeps the consumer-lag gauge of the partitions it owns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Self

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Gauge

from trigger_daemon.adapters.kafka.connection import KafkaConnection, start_client
from trigger_daemon.errors import BrokerError
from trigger_daemon.observability import metrics
from trigger_daemon.ports import SourceRecord

log = structlog.get_logger(__name__)

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
        self._servers = connection.bootstrap_servers
        self._max_records = max_records
        self._revocation_handler: RevocationHandler | None = None
        self._has_joined_group = False
        # labels() is slow: one labelled gauge per partition, made when first needed.
        self._lag_gauges: dict[TopicPartition, Gauge] = {}
        self._consumer = AIOKafkaConsumer(
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            **connection.consumer_options(),
        )

    async def __aenter__(self) -> Self:
        self._consumer.subscribe(self._topics, listener=_RebalanceListener(self))
        await start_client(self._consumer, "consumer", self._servers)
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

    async def probe(self) -> None:
        """Ask the broker for the cluster's metadata: raises, or hangs, while it cannot answer."""
        await self._consumer.topics()

    def set_revocation_handler(self, handler: RevocationHandler) -> None:
        self._revocation_handler = handler

    async def _handle_revocation(self, revoked: set[TopicPartition]) -> None:
        # Another member reports these partitions' lag from now on: no stale value here.
        self._forget_lag(revoked)
        partitions = {(tp.topic, tp.partition) for tp in revoked}
        if self._revocation_handler is not None and partitions:
            await self._revocation_handler(partitions)

    def _handle_assignment(self, assigned: set[TopicPartition]) -> None:
        self._has_joined_group = True
        # Fetches between the revocation and now still saw the old assignment.
        self._forget_lag(set(self._lag_gauges) - assigned)

    def joined(self) -> bool:
        """True once this member has joined its group, even with no partition assigned (more
        members than partitions). It stays true through later rebalances, which aiokafka
        rejoins by itself."""
        return self._has_joined_group

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
            (tp.topic, tp.partition): [to_source_record(message) for message in messages]
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
    """Hands aiokafka's rebalance callbacks to the source."""

    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._source._handle_revocation(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Runs after every join, with an empty set too when there is no partition for us.
        self._source._handle_assignment(assigned)
        log.info(
            "partitions.assigned",
            partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in assigned),
        )


def to_source_record(message: ConsumerRecord) -> SourceRecord:
    """The pipeline's view of an aiokafka record; a header without a value reads as b"".

    Positional: one is built per record, and keywords cost a third more."""
    return SourceRecord(
        message.topic,
        message.partition,
        message.offset,
        message.key,
        message.value,
        tuple((name, value or b"") for name, value in message.headers) if message.headers else (),
        message.timestamp,
    )
