"""One record's flow: record → envelope → matches → vars → runWorkflow → durable outcome.

`RecordHandler.triage` decides, at once, what a record needs; most need nothing.
`RecordHandler.handle` returns only when every outcome of the record is durable (no match,
occurrences finished, or dead-lettered) and raises otherwise; the pipeline then tries the
record again. Running it twice is safe: the store keeps one occurrence per (trigger, event),
and a finished one is never run again. Scheduling and commits live in `pipeline`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from trigger_daemon.core.events import Envelope, Unprocessable, event_id
from trigger_daemon.core.expressions import document_for
from trigger_daemon.core.occurrences import NewOccurrence, Occurrence
from trigger_daemon.core.triggers import CompiledTrigger
from trigger_daemon.engine.calls import CallResult
from trigger_daemon.engine.runner import OccurrenceRunner
from trigger_daemon.observability import metrics
from trigger_daemon.observability.tracing import Tracing
from trigger_daemon.ports import DeadLetter, DeadLetterSink, SourceRecord, Store
from trigger_daemon.triggers.catalog import TriggerCatalog

log = structlog.get_logger(__name__)

WORKFLOW_FAILED_REASON = "workflow-call-failed"


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
    ) -> None:
        # Claims the occurrences this handler begins (Occurrence.claimed_by): one per process.
        self.claimant = claimant or uuid.uuid4().hex
        self._catalog = catalog
        self._store = store
        self._runner = runner
        self._dead_letters = dead_letters
        self._tracing = tracing or Tracing()

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

    async def handle(self, work: TriagedRecord) -> None:
        """Take one record's work (from `triage`) to a durable outcome, or raise: then it is
        handled again."""
        record, decoded = work.record, work.decoded
        if isinstance(decoded, Unprocessable):
            await self._dead_letter(DeadLetter(record, decoded.reason.value, decoded.detail))
            return
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
            for compiled, occurrence in zip(work.triggers, occurrences, strict=True):
                if not occurrence.is_final:
                    await self._run(compiled, occurrence, work.document, record)

    async def _run(
        self,
        compiled: CompiledTrigger,
        occurrence: Occurrence,
        document: dict[str, Any],
        record: SourceRecord,
    ) -> None:
        async def dead_letter_if_exhausted(result: CallResult) -> None:
            # Before the outcome write: if this publish fails the record is handled again and
            # the still-pending occurrence retried, so the letter is never lost.
            if not result.succeeded and result.transient:
                letter = DeadLetter(
                    record, WORKFLOW_FAILED_REASON, result.error or "", compiled.trigger.id
                )
                await self._dead_letter(letter)

        traceparent = record.header("traceparent")
        await self._runner.run(
            compiled,
            occurrence,
            document,
            traceparent=traceparent.decode("ascii", "replace") if traceparent else None,
            before_write=dead_letter_if_exhausted,
            log_context={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            },
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


class LogOnlyDeadLetters:
    """The sink when `kafka.dead_letter_topic` is null: the pipeline's log line and counter
    are the only record of the letter."""

    async def publish(self, letter: DeadLetter) -> None:
        del letter
