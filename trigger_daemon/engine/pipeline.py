"""Scheduling records: key-ordered concurrency, bounded work, commits that never skip.

Each fetched record is decoded and triaged once (`RecordHandler.triage`); one that needs no
work (most events match no trigger) is finished on the spot. The others join the queue of
their ordering key (the Kafka record key, or its partition when it has none, or the value of
the configured `ordering_key` expression); one worker per key handles its queue in order, so
records of a key reach the API in order while other keys run beside them. Offsets are
committed at each partition's longest finished prefix (`core.offsets`). Fetching pauses while
`max_in_flight` records are queued or the orchestration circuit is open. When the queues are
full the loop first waits for room (a fetch from paused partitions would only sit out its
timeout, and aiokafka drops what it had prefetched for them); only when none comes within a
fetch timeout does it pause and fetch, which keeps the consumer's poll alive.

A record whose handling fails (store or broker trouble) is tried again in place after a
back-off: its key waits, its partition's commit point does not pass it, and nothing is lost.
Before partitions move to another member, their queued records are dropped (the next owner
reads them again), the ones being handled are finished or given up (`tenure.PartitionLost`: a
call about to be retried stops there and leaves its record uncommitted), and the commit point
is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from trigger_daemon.core.events import Envelope, Unprocessable, decode
from trigger_daemon.core.expressions import (
    Expression,
    ExpressionError,
    document_for,
    render_value,
)
from trigger_daemon.core.offsets import PartitionProgress
from trigger_daemon.core.retry import RetryPolicy, backoff_delay
from trigger_daemon.engine.records import ClaimedElsewhere, TriagedRecord
from trigger_daemon.engine.tenure import PartitionLost, Tenure
from trigger_daemon.errors import BrokerError
from trigger_daemon.observability import metrics
from trigger_daemon.ports import Source, SourceRecord

log = structlog.get_logger(__name__)

FETCH_TIMEOUT_SECONDS = 0.2
# A fetched batch is triaged on the event loop. Past this much work the loop yields, so that
# heartbeats, fetch answers, calls in flight and the API never wait long behind a batch.
TRIAGE_SLICE_SECONDS = 0.01
COMMIT_INTERVAL_SECONDS = 0.2
# The back-off before a failed record is handled again in place. Its max_attempts is never
# read: the record is retried until it succeeds, since giving up on it would lose it.
IN_PLACE_RETRY = RetryPolicy(initial_backoff_seconds=0.25, max_backoff_seconds=30.0)

Partition = tuple[str, int]
OrderingKey = tuple[str, int, bytes | str | None]


class Handler(Protocol):
    """What the pipeline asks of each record: `RecordHandler`, or a backfill's."""

    def triage(
        self, record: SourceRecord, decoded: Envelope | Unprocessable
    ) -> TriagedRecord | None: ...

    async def handle(self, work: TriagedRecord) -> object: ...


class Pipeline:
    def __init__(
        self,
        source: Source,
        handler: Handler,
        *,
        max_in_flight: int = 1024,
        revoke_timeout_seconds: float = 20.0,
        must_pause: Callable[[], bool] = lambda: False,
        ordering_key: Expression | None = None,
        triage_slice_seconds: float = TRIAGE_SLICE_SECONDS,
        metered: bool = True,
        tenure: Tenure | None = None,
    ) -> None:
        """`metered`: False for a backfill's pipeline, which leaves the live consumer's
        metrics (records consumed, records in flight) alone. `tenure` is told of revocations,
        for the handler to ask (the live pipeline's is shared with its `RecordHandler`)."""
        self._source = source
        self._metered = metered
        self._triage_slice = triage_slice_seconds
        self._handler = handler
        self._max_in_flight = max_in_flight
        self._revoke_timeout = revoke_timeout_seconds
        self._must_pause = must_pause
        self._ordering_key = ordering_key
        self._progress: dict[Partition, PartitionProgress] = {}
        self._queues: dict[OrderingKey, deque[TriagedRecord]] = {}
        self._workers: dict[OrderingKey, asyncio.Task[None]] = {}
        # The tenure's own set, updated in place: the handler asks the tenure.
        self._revoking = (tenure or Tenure()).revoking
        self._revoked_during_dispatch: set[Partition] = set()
        self._slice_ends = 0.0
        self._uncommitted: set[Partition] = set()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._room = asyncio.Event()  # set while fewer than max_in_flight records are queued
        self._room.set()
        self._last_commit = 0.0
        source.set_revocation_handler(self._on_revoked)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def run(self, stop: asyncio.Event, *, until_idle: bool = False) -> None:
        """Consume until `stop` is set (or, with `until_idle`, until caught up), then let the
        records in hand finish and commit. Cancelling it abandons unfinished records safely."""
        try:
            while not stop.is_set():
                await self._fetch_and_dispatch()
                await self._commit(force=False)
                # A fetch answered from the consumer's buffer and a commit not yet due return
                # without yielding: batch after batch would run in one turn of the loop.
                if time.monotonic() >= self._slice_ends:
                    await self._yield_turn()
                if until_idle and self._in_flight == 0 and await self._source.caught_up():
                    break
            self._source.pause()
            await self._idle.wait()
        finally:
            await self._stop_workers()
            await self._commit(force=True)

    async def _fetch_and_dispatch(self) -> None:
        if not self._room.is_set() and not self._must_pause():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), FETCH_TIMEOUT_SECONDS)
        if self._in_flight >= self._max_in_flight or self._must_pause():
            self._source.pause()
        else:
            self._source.resume()
        try:
            batches = await self._source.fetch(FETCH_TIMEOUT_SECONDS)
        except BrokerError as exc:
            log.warning("fetch.failed", error=str(exc))
            await asyncio.sleep(1.0)
            return
        self._revoked_during_dispatch.clear()
        for partition, records in batches.items():
            await self._dispatch_batch(partition, records)
        if self._metered:
            metrics.IN_FLIGHT.set(self._in_flight)

    async def _dispatch_batch(self, partition: Partition, records: Sequence[SourceRecord]) -> None:
        """Dispatch one partition's fetched records, yielding the loop after each slice of
        work. A rebalance can only run while the loop yields; a partition it moved away is
        left, with the rest of its records, to its next owner."""
        if partition in self._revoked_during_dispatch:
            return
        if self._metered:
            metrics.EVENTS_CONSUMED.labels(partition[0]).inc(len(records))  # labels() is slow
        progress = self._progress.get(partition)
        if progress is None:
            progress = self._progress[partition] = PartitionProgress()
        for record in records:
            if self._dispatch(record, progress):
                self._uncommitted.add(partition)
            if time.monotonic() >= self._slice_ends:
                await self._yield_turn()
                if partition in self._revoked_during_dispatch:
                    return

    async def _yield_turn(self) -> None:
        """Let the loop's other tasks run; the next slice of work starts after."""
        await asyncio.sleep(0)
        self._slice_ends = time.monotonic() + self._triage_slice

    def _dispatch(self, record: SourceRecord, progress: PartitionProgress) -> bool:
        """Queue `record` for its key's worker, or finish it here when it needs no work;
        True when it finished here."""
        work = self._handler.triage(record, decode(record.value))
        if work is None:
            progress.start_finished(record.offset)
            return True
        progress.start(record.offset)
        key = (record.topic, record.partition, self._key_of(record, work.decoded))
        self._queues.setdefault(key, deque()).append(work)
        self._in_flight += 1
        self._idle.clear()
        if self._in_flight >= self._max_in_flight:
            self._room.clear()
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key), name=f"key-{key}")
        return False

    def _key_of(
        self, record: SourceRecord, decoded: Envelope | Unprocessable
    ) -> bytes | str | None:
        if self._ordering_key is None or isinstance(decoded, Unprocessable):
            return record.key
        try:
            value = self._ordering_key.evaluate(document_for(decoded))
        except ExpressionError:
            return record.key
        return record.key if value is None else render_value(value)

    async def _work(self, key: OrderingKey) -> None:
        queue = self._queues[key]
        try:
            while queue and key[:2] not in self._revoking:
                work = queue[0]
                try:
                    await self._handle_until_done(work)
                except PartitionLost:
                    return  # unfinished, in its queue: the revocation drops it uncommitted
                queue.popleft()
                self._finished(work.record)
        finally:
            if self._workers.get(key) is asyncio.current_task():
                del self._workers[key]
                if not queue:
                    self._queues.pop(key, None)

    async def _handle_until_done(self, work: TriagedRecord) -> None:
        record = work.record
        failures = 0
        while True:
            try:
                await self._handler.handle(work)
                return
            except PartitionLost:
                raise
            except ClaimedElsewhere as exc:
                # Not a failure: the handler has already waited for the claimant, and handling
                # again claims the occurrence back.
                log.warning(
                    "record.claimed_elsewhere_handled_again",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    reason=str(exc),
                )
            except Exception:
                failures += 1
                log.exception(
                    "record.failed_will_retry",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    failures=failures,
                )
                await asyncio.sleep(backoff_delay(IN_PLACE_RETRY, failures))

    def _finished(self, record: SourceRecord) -> None:
        partition = (record.topic, record.partition)
        progress = self._progress.get(partition)
        if progress is not None:
            progress.finish(record.offset)
            self._uncommitted.add(partition)
        self._leave_in_flight(1)

    def _leave_in_flight(self, count: int) -> None:
        self._in_flight -= count  # the IN_FLIGHT gauge is set once per fetch, not per record
        if self._in_flight < self._max_in_flight:
            self._room.set()
        if self._in_flight == 0:
            self._idle.set()

    async def _commit(self, *, force: bool, only: set[Partition] | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_commit < COMMIT_INTERVAL_SECONDS:
            return
        partitions = self._uncommitted if only is None else self._uncommitted & only
        offsets = {
            partition: point
            for partition in partitions
            if (point := self._progress[partition].commit_point) is not None
        }
        if not offsets:
            return
        try:
            await self._source.commit(offsets)
        except BrokerError as exc:
            log.warning("commit.failed", error=str(exc))  # committed later, or re-read
            return
        # Records finished while the commit was on its way moved some commit points further:
        # those partitions stay uncommitted, or their last records would never be committed.
        for partition, point in offsets.items():
            progress = self._progress.get(partition)
            if progress is None or progress.commit_point == point:
                self._uncommitted.discard(partition)
        self._last_commit = now

    async def _on_revoked(self, partitions: set[Partition]) -> None:
        """Before `partitions` move: drop their queued records, finish the ones being
        handled (bounded by the revoke timeout), commit, and forget them."""
        self._revoking.update(partitions)
        self._revoked_during_dispatch |= partitions
        try:
            workers = [task for key, task in self._workers.items() if key[:2] in partitions]
            if workers:
                _, late = await asyncio.wait(workers, timeout=self._revoke_timeout)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
            await self._commit(force=True, only=partitions)
            self._forget(partitions)
        finally:
            self._revoking.difference_update(partitions)
        log.info("partitions.revoked", partitions=sorted(f"{t}/{p}" for t, p in partitions))

    def _forget(self, partitions: set[Partition]) -> None:
        dropped = 0
        for key in [key for key in self._queues if key[:2] in partitions]:
            dropped += len(self._queues.pop(key))
        for partition in partitions:
            self._progress.pop(partition, None)
            self._uncommitted.discard(partition)
        self._leave_in_flight(dropped)

    async def _stop_workers(self) -> None:
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
