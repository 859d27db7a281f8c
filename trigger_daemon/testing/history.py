"""ListHistory: `ports.History` over lists of records per topic, with the window rules of the
Kafka reader (skip records stamped before the window; a partition ends at its first record
stamped at or after the window's end)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import TYPE_CHECKING

from trigger_daemon.core.windows import Place, Window
from trigger_daemon.ports import History, HistoryChunk, SourceRecord


class ListHistory:
    def __init__(self, topics: Mapping[str, Sequence[SourceRecord]], chunk_size: int = 100) -> None:
        self.topics = topics
        self._chunk_size = chunk_size
        self.flowing = asyncio.Event()  # cleared: reading waits before each chunk
        self.flowing.set()
        self.reads_open = 0

    async def missing_topics(self, topics: Sequence[str]) -> list[str]:
        return [topic for topic in topics if topic not in self.topics]

    async def read(
        self,
        topics: Sequence[str],
        window: Window,
        start: Mapping[tuple[str, int], int] | None = None,
    ) -> AsyncGenerator[HistoryChunk, None]:
        resume = start or {}
        records = [
            record
            for topic in topics
            for record in self.topics[topic]
            if record.offset >= resume.get((record.topic, record.partition), 0)
        ]
        total = len(records)
        ended: set[tuple[str, int]] = set()
        self.reads_open += 1
        try:
            for first in range(0, total, self._chunk_size):
                await self.flowing.wait()
                inside, read = [], 0
                for record in records[first : first + self._chunk_size]:
                    if (record.topic, record.partition) in ended:
                        continue
                    read += 1
                    place = window.place(record.timestamp_ms)
                    if place is Place.AFTER:
                        ended.add((record.topic, record.partition))
                    elif place is Place.INSIDE:
                        inside.append(record)
                yield HistoryChunk(inside, read, total)
        finally:
            self.reads_open -= 1


if TYPE_CHECKING:

    def _implements_the_history_port(history: ListHistory) -> History:
        return history
