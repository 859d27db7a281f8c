"""One backfill's run: the live pipeline over a window of history, for one trigger.

The run is a `Pipeline` (key-ordered concurrency, bounded work, commits at the finished
prefix) over two adapters:

- `HistorySource`, a `ports.Source` over `ports.History`: each fetch is the next chunk of the
  window; its commits are the backfill's positions, saved to the store (with the counts up to
  them) at most every `SAVE_INTERVAL_SECONDS`, and once more when the run stops. A broker
  error reopens the read where it stopped. Between two chunks it keeps to a share of a busy
  event loop (`background.BackgroundShare`), so the live pipeline keeps most of its pace. It
  never revokes: the lease, not a consumer group, decides who runs the backfill.
- `BackfillRecords`, the pipeline's handler: its triage matches only the backfill's trigger
  (and leaves unprocessable records alone: they were dead-lettered when first consumed); its
  handling is the live `RecordHandler.handle`, so each match takes the live occurrence path
  (one occurrence per trigger and event, the same Idempotency-Key, retry policy, circuit
  breaker, dead letters, and the daemon's one `WorkflowCaller` with its flow control).

After a crash the run resumes from the saved positions: the records after them are read
again, and those whose occurrence is already final are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence

import structlog

from trigger_daemon.core.backfills import BackfillTally, Counts, Outcome, Partition, Positions
from trigger_daemon.core.events import Envelope, Unprocessable
from trigger_daemon.core.expressions import document_for
from trigger_daemon.core.matching import TriggerIndex
from trigger_daemon.core.occurrences import OccurrenceStatus
from trigger_daemon.core.triggers import CompiledTrigger
from trigger_daemon.core.windows import Window
from trigger_daemon.engine.background import BackgroundShare
from trigger_daemon.engine.records import RecordHandler, TriagedRecord
from trigger_daemon.errors import BrokerError, StoreError
from trigger_daemon.ports import History, HistoryChunk, SourceRecord

log = structlog.get_logger(__name__)

SAVE_INTERVAL_SECONDS = 1.0
_IDLE_FETCH_SECONDS = 0.05  # a paused or finished source answers nothing after this long

# Saves the positions and the counts up to them; False when the lease is lost.
SavePositions = Callable[[Positions, Counts], Awaitable[bool]]


class HistorySource:
    """`ports.Source` over the records of `window` in `topics`, from `positions` on."""

    def __init__(
        self,
        history: History,
        topics: Sequence[str],
        window: Window,
        positions: Positions,
        tally: BackfillTally,
        save: SavePositions,
    ) -> None:
        self._history = history
        self._topics = tuple(topics)
        self._window = window
        self.positions = dict(positions)  # committed: every record before them finished
        self._read_from = dict(positions)  # where a reopened read starts
        self._tally = tally
        self._save = save
        self._chunks: AsyncGenerator[HistoryChunk, None] | None = None
        self._next: asyncio.Future[HistoryChunk] | None = None
        self._share = BackgroundShare()
        self._read_before_open = 0
        self._paused = False
        self.exhausted = False
        self.lost = asyncio.Event()  # set when a save finds the lease gone
        self._saved_at = time.monotonic()
        self._unsaved = False

    async def fetch(
        self, timeout_seconds: float
    ) -> Mapping[tuple[str, int], Sequence[SourceRecord]]:
        if self.exhausted or self._paused:
            await asyncio.sleep(min(timeout_seconds, _IDLE_FETCH_SECONDS))
            return {}
        # Between two chunks: while the live pipeline is busy, reading (and so the records
        # handed to the calls) keeps to a share of the event loop.
        await self._share.pause()
        if self._chunks is None:
            self._chunks = self._history.read(self._topics, self._window, self._read_from)
            self._read_before_open = self._tally.durable.read + self._tally.read
        if self._next is None:
            self._next = asyncio.ensure_future(anext(self._chunks))
        # Waited for, never cancelled on timeout (that would end the read): the pipeline
        # gets control back to see a stop even while the broker is slow to answer.
        await asyncio.wait({self._next}, timeout=timeout_seconds)
        if not self._next.done():
            return {}
        next_chunk, self._next = self._next, None
        try:
            chunk = next_chunk.result()
        except StopAsyncIteration:
            await self.close()
            self.exhausted = True
            return {}
        except BrokerError:
            await self.close()  # reopened where it stopped, on the pipeline's next fetch
            raise
        self._tally.read += chunk.read
        self._tally.total = max(self._tally.total, self._read_before_open + chunk.total)
        batches: dict[Partition, list[SourceRecord]] = {}
        for record in chunk.records:
            batches.setdefault((record.topic, record.partition), []).append(record)
        for partition, records in batches.items():
            self._read_from[partition] = records[-1].offset + 1
        return batches

    async def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.positions.update(offsets)
        self._tally.settle(offsets)
        self._unsaved = True
        if time.monotonic() - self._saved_at >= SAVE_INTERVAL_SECONDS:
            await self.flush()

    async def flush(self) -> None:
        """Save the positions and their counts now, if they moved; a store error leaves them
        for the next try (a crash meanwhile re-reads a little more)."""
        if not self._unsaved:
            return
        try:
            kept = await self._save(dict(self.positions), self._tally.durable)
        except StoreError as exc:
            log.warning("backfill.save_failed_will_retry", error=str(exc))
            return
        self._saved_at = time.monotonic()
        self._unsaved = False
        if not kept:
            self.lost.set()

    async def close(self) -> None:
        pending, self._next = self._next, None
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        chunks, self._chunks = self._chunks, None
        if chunks is not None:
            await chunks.aclose()

    def set_revocation_handler(
        self, handler: Callable[[set[tuple[str, int]]], Awaitable[None]]
    ) -> None:
        del handler  # nothing is ever revoked: the lease decides who runs a backfill

    def assigned(self) -> set[tuple[str, int]]:
        return set(self._read_from)

    def joined(self) -> bool:
        return True

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    async def caught_up(self) -> bool:
        return self.exhausted


class BackfillRecords:
    """The pipeline's handler for one backfill: only `compiled` is matched, and each match
    takes the live occurrence path."""

    def __init__(
        self, compiled: CompiledTrigger, records: RecordHandler, tally: BackfillTally
    ) -> None:
        self._index = TriggerIndex([compiled])
        self._records = records
        self._tally = tally

    def triage(
        self, record: SourceRecord, decoded: Envelope | Unprocessable
    ) -> TriagedRecord | None:
        work = None
        if not isinstance(decoded, Unprocessable) and self._index.has_type(decoded.type):
            document = document_for(decoded)
            match = self._index.match(decoded, document)
            if match.triggers:
                work = TriagedRecord(record, decoded, document, match.triggers)
        self._tally.scanned((record.topic, record.partition), record.offset, matched=bool(work))
        return work

    async def handle(self, work: TriagedRecord) -> None:
        ran = await self._records.handle(work)
        if not ran:
            outcome = Outcome.SKIPPED  # its occurrence was final already: live, or earlier
        elif ran[0].status is OccurrenceStatus.FAILED:
            outcome = Outcome.FAILED
        else:
            outcome = Outcome.RAN
        self._tally.ended((work.record.topic, work.record.partition), work.record.offset, outcome)


@contextlib.asynccontextmanager
async def closing(source: HistorySource) -> AsyncGenerator[HistorySource, None]:
    try:
        yield source
    finally:
        await source.close()
