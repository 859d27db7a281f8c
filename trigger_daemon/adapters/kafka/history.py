"""KafkaHistory: the `ports.History` a backtest reads, outside the consumer group.

Each read has its own consumer with no group id: it `assign`s the partitions, seeks and
never commits, so the live consumer group's offsets and lag are untouched. It connects as
the live consumer does (`KafkaConnection`).

Where a partition starts: the offset ListOffsets gives for the window's start (`offsets_for_times`),
taken as a lower bound: timestamps need not grow with offsets, and some brokers answer loosely
(Tansu answers 0 for any time), so records stamped before the window are skipped while reading.
Where it ends: at its end offset when the read starts, or at its first record stamped at or
after the window's end. The end offset is the high-water mark of the partition's first fetch
answer (Tansu's `end_offsets` counts batches, not records; on Kafka both agree), and
`end_offsets` is only the estimate used until then.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from trigger_daemon.adapters.kafka.connection import KafkaConnection, start_client
from trigger_daemon.adapters.kafka.consumer import to_source_record
from trigger_daemon.core.windows import Place, Window
from trigger_daemon.errors import BrokerError
from trigger_daemon.ports import HistoryChunk, SourceRecord

_FETCH_TIMEOUT_MS = 200
# What one backtest holds at most: a fetch answer of this size plus the records of one chunk.
_FETCH_MAX_BYTES = 8 * 1024 * 1024
_PARTITION_FETCH_MAX_BYTES = 1024 * 1024


class KafkaHistory:
    def __init__(self, connection: KafkaConnection, max_records: int = 500) -> None:
        self._connection = connection
        self._max_records = max_records

    async def missing_topics(self, topics: Sequence[str]) -> list[str]:
        consumer = await self._start_consumer()
        try:
            known = await consumer.topics()
        except KafkaError as exc:
            raise BrokerError(f"cannot list the topics: {exc}", retriable=exc.retriable) from exc
        finally:
            await consumer.stop()
        return [topic for topic in topics if topic not in known]

    async def read(
        self,
        topics: Sequence[str],
        window: Window,
        start: Mapping[tuple[str, int], int] | None = None,
    ) -> AsyncGenerator[HistoryChunk, None]:
        consumer = await self._start_consumer()
        try:
            reader = _WindowReader(consumer, window, self._max_records)
            await reader.start(topics, start or {})
            while reader.open:
                yield await reader.next_chunk()
        except KafkaError as exc:
            raise BrokerError(f"backtest read failed: {exc}", retriable=exc.retriable) from exc
        finally:
            await consumer.stop()

    async def _start_consumer(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            # A start offset that retention removed meanwhile: from the oldest record left.
            auto_offset_reset="earliest",
            fetch_max_bytes=_FETCH_MAX_BYTES,
            max_partition_fetch_bytes=_PARTITION_FETCH_MAX_BYTES,
            **self._connection.consumer_options(),
        )
        servers = self._connection.bootstrap_servers
        starting = asyncio.ensure_future(start_client(consumer, "backtest consumer", servers))
        try:
            await asyncio.shield(starting)
        except asyncio.CancelledError:
            # Cancelled while connecting (a cancel, the daemon stopping): aiokafka leaves a
            # connection open when its start is cancelled, so the start ends first.
            with contextlib.suppress(BrokerError):
                await starting
            await consumer.stop()
            raise
        return consumer


class _WindowReader:
    """One read's partitions: where each starts and ends, and which are still open."""

    def __init__(self, consumer: AIOKafkaConsumer, window: Window, max_records: int) -> None:
        self._consumer = consumer
        self._window = window
        self._max_records = max_records
        self._starts: dict[TopicPartition, int] = {}
        self._ends: dict[TopicPartition, int] = {}
        self._exact_ends: set[TopicPartition] = set()
        self.open: set[TopicPartition] = set()

    async def start(self, topics: Sequence[str], resume: Mapping[tuple[str, int], int]) -> None:
        consumer = self._consumer
        await consumer.topics()  # loads the metadata partitions_for_topic reads
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        found = await consumer.offsets_for_times({tp: self._window.since_ms for tp in partitions})
        for tp in partitions:
            end = ends[tp]
            start = end if found.get(tp) is None else min(found[tp].offset, end)
            # A resumed read: nothing it needs lies before its saved position.
            start = min(max(start, resume.get((tp.topic, tp.partition), start)), end)
            self._starts[tp], self._ends[tp] = start, end
            if start < end:
                consumer.seek(tp, start)
                self.open.add(tp)
            else:
                consumer.pause(tp)

    @property
    def total(self) -> int:
        return sum(self._ends[tp] - self._starts[tp] for tp in self._ends)

    async def next_chunk(self) -> HistoryChunk:
        batches = await self._consumer.getmany(
            *self.open, timeout_ms=_FETCH_TIMEOUT_MS, max_records=self._max_records
        )
        inside: list[SourceRecord] = []
        read = 0
        for tp in list(self.open):
            self._learn_end(tp)
            end = self._ends[tp]
            for message in batches.get(tp, ()):
                if message.offset >= end:
                    self._close(tp)
                    break
                read += 1
                place = self._window.place(message.timestamp)
                if place is Place.AFTER:
                    self._close(tp)
                    break
                if place is Place.INSIDE:
                    inside.append(to_source_record(message))
            if tp in self.open and await self._consumer.position(tp) >= end:
                self._close(tp)
        return HistoryChunk(inside, read, self.total)

    def _learn_end(self, tp: TopicPartition) -> None:
        """The partition's end offset from its first fetch answer's high-water mark."""
        if tp in self._exact_ends:
            return
        highwater = self._consumer.highwater(tp)
        if highwater is not None:
            self._ends[tp] = highwater
            self._exact_ends.add(tp)

    def _close(self, tp: TopicPartition) -> None:
        self.open.discard(tp)
        self._consumer.pause(tp)
