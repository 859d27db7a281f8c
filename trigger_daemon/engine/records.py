"""One record's flow: record → envelope → matches → vars → runWorkflow → durable outcome.

`RecordHandler.triage` decides, at once, what a record needs; most need nothing.
`RecordHandler.handle` returns only when every outcome of the record is durable (no match,
occurrences finished, or dead-lettered) and raises otherwise; the pipeline then tries the
record again. Running it twice is safe: the store keeps one occurrence per (trigger, event),
and a finished one is never run again. Scheduling and commits live in `pipeline`.
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from trigger_daemon.core.events import Envelope, Unprocessable, event_id
from trigger_daemon.core.expressions import document_for
from trigger_daemon.core.header_values import header_safe
from trigger_daemon.core.occurrences import NewOccurrence, Occurrence
from trigger_daemon.core.triggers import CompiledTrigger
from trigger_daemon.engine.calls import CallResult
from trigger_daemon.engine.runner import OccurrenceRunner
from trigger_daemon.engine.tenure import Tenure
from trigger_daemon.observability import metrics
from trigger_daemon.observability.tracing import Tracing
from trigger_daemon.ports import DeadLetter, DeadLetterSink, SourceRecord, Store
from trigger_daemon.triggers.catalog import TriggerCatalog

log = structlog.get_logger(__name__)

WORKFLOW_FAILED_REASON = "workflow-call-failed"
# How long an occurrence another worker began is left to it before this one runs it too: as
# long as the runner trusts a pending occurrence without reading it back (runner.py), and
# shorter than a restart, so an occurrence left pending by a crash is run at once.
CONCURRENT_WAIT = timedelta(seconds=2)
# How long a record waits for the replica that claimed its occurrence away to finish it,
# before the record is handled again and claims it back: longer than a call and a few of its
# retries take, so that replica's answer is usually awaited rather than asked for again.
CLAIMED_ELSEWHERE_WAIT_SECONDS = 30.0


class ClaimedElsewhere(Exception):
    """Another replica claimed the occurrence and has not finished it: handle the record
    again, which claims it back and runs it."""


@dataclass(frozen=True, slots=True)
class TriagedRecord:
    """A record that needs handling: dead-lettering, or the triggers it matched."""

    record: SourceRecord
    decoded: Envelope | Unprocessable
    document: dict[str, Any] = field(default_factory=dict)
    triggers: Sequence[CompiledTrigger] = ()


class RecordHandler:
    def __init__(
        self,
        catalog: TriggerCatalog,
        store: Store,
        runner: OccurrenceRunner,
        dead_letters: DeadLetterSink,
        tracing: Tracing | None = None,
        claimant: str | None = None,
        tenure: Tenure | None = None,
        claimed_elsewhere_wait_seconds: float = CLAIMED_ELSEWHERE_WAIT_SECONDS,
    ) -> None:
        """`tenure`: whether this replica still holds a record's partition (the live
        pipeline's); without it, every record's partition is taken to be held."""
        # Claims the occurrences this handler begins (Occurrence.claimed_by): one per process.
        self.claimant = claimant or uuid.uuid4().hex
        self._catalog = catalog
        self._store = store
        self._runner = runner
        self._dead_letters = dead_letters
        self._tracing = tracing or Tracing()
        self._tenure = tenure
        self._claimed_elsewhere_wait = claimed_elsewhere_wait_seconds

    def holding(self, tenure: Tenure) -> RecordHandler:
        """This handler, for the live pipeline whose partitions `tenure` tracks (a backfill
        reads outside the group, so its records are always its own)."""
        held = copy.copy(self)  # the same parts and claimant
        held._tenure = tenure
        return held

    def triage(
        self, record: SourceRecord, decoded: Envelope | Unprocessable
    ) -> TriagedRecord | None:
        """What `record` needs done, or None when it needs nothing (it matches no trigger).

        Synchronous and cheap, so the pipeline can finish most records where it fetched them,
        without a task or a queue. Filter failures are counted and logged here, once."""
        if isinstance(decoded, Unprocessable):
            return TriagedRecord(record, decoded)
        index = self._catalog.index
        if not index.has_type(decoded.type):
            return None  # most event types have no trigger: no document to build
        document = document_for(decoded)
        match = index.match(decoded, document)
        for failure in match.filter_failures:
            metrics.FILTER_ERRORS.labels(failure.trigger_id).inc()
            log.warning(
                "filter.failed",
                trigger_id=failure.trigger_id,
                error=failure.error,
                event_type=decoded.type,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
        if not match.triggers:
            return None
        metrics.series(metrics.EVENTS_MATCHED, decoded.type).inc()
        return TriagedRecord(record, decoded, document, match.triggers)

    async def handle(self, work: TriagedRecord) -> list[Occurrence]:
        """Take one record's work (from `triage`) to a durable outcome, or raise: then it is
        handled again. Returns the occurrences it ran, as they ended (not those that were
        final already)."""
        record, decoded = work.record, work.decoded
        if isinstance(decoded, Unprocessable):
            await self._dead_letter(DeadLetter(record, decoded.reason.value, decoded.detail))
            return []
        if self._tenure is not None:
            # A replica resuming from a pause claims nothing before it knows the partition
            # is still its own: a claim taken from the new owner would stop that owner's call.
            await self._tenure.ensure_held((record.topic, record.partition))
        identity = event_id(
            decoded, record.headers_map, record.topic, record.partition, record.offset
        )
        # Only matched records get a span (and have their trace headers read).
        with self._tracing.event_span(
            record, event_type=decoded.type, event_id=identity, matched=len(work.triggers)
        ):
            now = datetime.now(UTC)
            occurrences = await self._store.begin_occurrences(
                [
                    NewOccurrence(c.trigger.id, identity, decoded.raw, now, self.claimant)
                    for c in work.triggers
                ]
            )
            ran = []
            for compiled, begun in zip(work.triggers, occurrences, strict=True):
                occurrence = begun
                if not begun.is_final and begun.date != now:
                    occurrence = await self._settled(begun)
                if not occurrence.is_final:
                    occurrence = await self._run(compiled, occurrence, work.document, record)
                    if not occurrence.is_final:
                        occurrence = await self._finished_elsewhere(occurrence, record)
                    ran.append(occurrence)
            return ran

    async def _settled(self, occurrence: Occurrence) -> Occurrence:
        """An occurrence another worker began (the live pipeline and a backfill on the same
        event, or a partition's old and new owner): while it is young, wait for that worker
        to finish it rather than call beside it. An older one (its worker died) is run."""
        waited = 0
        while not occurrence.is_final:
            if datetime.now(UTC) - occurrence.date >= CONCURRENT_WAIT:
                break
            waited += 1
            occurrence = await self._read_again(occurrence, waited)
        return occurrence

    async def _finished_elsewhere(self, occurrence: Occurrence, record: SourceRecord) -> Occurrence:
        """An occurrence another replica claimed while this one ran it (this one was paused
        and the other took the record over, or this one took it over from a replica that
        resumed): wait for that replica to finish it. Committing past the record at once
        would leave the occurrence pending for ever if that replica then lost the partition
        and gave the record up. Raises PartitionLost when this replica loses it meanwhile,
        and ClaimedElsewhere when the occurrence is still pending after the wait."""
        partition = (record.topic, record.partition)
        deadline = time.monotonic() + self._claimed_elsewhere_wait
        waited = 0
        while not occurrence.is_final:
            if self._tenure is not None:
                await self._tenure.ensure_held(partition)
            if time.monotonic() >= deadline:
                raise ClaimedElsewhere(
                    f"occurrence {occurrence.id} is still pending, claimed by "
                    f"{occurrence.claimed_by}, after {self._claimed_elsewhere_wait:g} s"
                )
            waited += 1
            occurrence = await self._read_again(occurrence, waited)
        return occurrence

    async def _read_again(self, occurrence: Occurrence, waited: int) -> Occurrence:
        """`occurrence` read from the store after a pause that grows with each read (`waited`
        so far), up to a second: the rhythm of every wait for another worker's outcome."""
        await asyncio.sleep(min(0.05 * waited, 1.0))
        return await self._store.get_occurrence(occurrence.id)

    async def _run(
        self,
        compiled: CompiledTrigger,
        occurrence: Occurrence,
        document: dict[str, Any],
        record: SourceRecord,
    ) -> Occurrence:
        async def dead_letter_if_exhausted(result: CallResult) -> None:
            # Before the outcome write: if this publish fails the record is handled again and
            # the still-pending occurrence retried, so the letter is never lost.
            if not result.succeeded and result.transient:
                letter = DeadLetter(
                    record, WORKFLOW_FAILED_REASON, result.error or "", compiled.trigger.id
                )
                await self._dead_letter(letter)

        tenure, partition = self._tenure, (record.topic, record.partition)
        return await self._runner.run(
            compiled,
            occurrence,
            document,
            traceparent=_passable_traceparent(record.header("traceparent")),
            before_write=dead_letter_if_exhausted,
            log_context={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            },
            still_held=None if tenure is None else lambda: tenure.holds(partition),
        )

    async def _dead_letter(self, letter: DeadLetter) -> None:
        await self._dead_letters.publish(letter)
        metrics.DEAD_LETTERS.labels(letter.reason).inc()
        context = {"trigger_id": letter.trigger_id} if letter.trigger_id else {}
        log.warning(
            "record.dead_lettered",
            reason=letter.reason,
            detail=letter.detail,
            **context,
            topic=letter.record.topic,
            partition=letter.record.partition,
            offset=letter.record.offset,
        )


def _passable_traceparent(header: bytes | None) -> str | None:
    """The record's own traceparent, passed on to the API when tracing is off; one no header
    can carry (a producer's line break) is not, as it would make every call raise."""
    traceparent = header.decode("ascii", "replace") if header else None
    return traceparent if traceparent and header_safe(traceparent) else None


class LogOnlyDeadLetters:
    """The sink when `kafka.dead_letter_topic` is null: the pipeline's log line and counter
    are the only record of the letter."""

    async def publish(self, letter: DeadLetter) -> None:
        del letter
