"""One record's flow: record → envelope → matches → vars → runWorkflow → durable outcome.

`RecordHandler.handle` returns only when every outcome of the record is durable (no match,
occurrences finished, or dead-lettered) and raises otherwise; the pipeline then tries the
record again. Running it twice is safe: the store keeps one occurrence per (trigger, event),
and a finished one is never run again. Scheduling and commits live in `pipeline`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog

from trigger_daemon import observability as metrics
from trigger_daemon.calls import CallResult, WorkflowCaller
from trigger_daemon.catalog import TriggerCatalog
from trigger_daemon.core.events import Envelope, Unprocessable, event_id
from trigger_daemon.core.expressions import ExpressionError, document_for
from trigger_daemon.core.occurrences import (
    NewOccurrence,
    Occurrence,
    OccurrenceStatus,
    Outcome,
    outcome_event,
)
from trigger_daemon.core.retry import RetryPolicy
from trigger_daemon.core.triggers import CompiledTrigger
from trigger_daemon.ports import DeadLetter, DeadLetterSink, OutcomeSink, SourceRecord, Store

log = structlog.get_logger("trigger_daemon.handler")

WORKFLOW_FAILED_REASON = "workflow-call-failed"


class RecordHandler:
    def __init__(
        self,
        catalog: TriggerCatalog,
        store: Store,
        caller: WorkflowCaller,
        dead_letters: DeadLetterSink,
        outcome_events: OutcomeSink | None = None,
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._caller = caller
        self._dead_letters = dead_letters
        self._outcome_events = outcome_events

    async def handle(self, record: SourceRecord, decoded: Envelope | Unprocessable) -> None:
        """Take one record (decoded once by the pipeline) to a durable outcome, or raise:
        then it is handled again."""
        if isinstance(decoded, Unprocessable):
            await self._dead_letter(DeadLetter(record, decoded.reason.value, decoded.detail))
            return
        document = document_for(decoded)
        match = self._catalog.index.match(decoded, document)
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
            return
        metrics.EVENTS_MATCHED.labels(decoded.type).inc()
        identity = event_id(
            decoded, record.headers_map, record.topic, record.partition, record.offset
        )
        now = datetime.now(UTC)
        occurrences = await self._store.begin_occurrences(
            [NewOccurrence(c.trigger.id, identity, decoded.raw, now) for c in match.triggers]
        )
        for compiled, occurrence in zip(match.triggers, occurrences, strict=True):
            if not occurrence.is_final:
                await self._run(compiled, occurrence, decoded, document, record)

    async def _run(
        self,
        compiled: CompiledTrigger,
        occurrence: Occurrence,
        envelope: Envelope,
        document: dict[str, Any],
        record: SourceRecord,
    ) -> None:
        try:
            variables = compiled.render_vars(document)
        except ExpressionError as exc:
            outcome = Outcome.failed(str(exc), occurrence.attempts)
        else:
            result = await self._call(compiled, variables, occurrence, record)
            outcome = _outcome_of(result, occurrence, variables)
            if not result.succeeded and result.transient:
                # Before the outcome write: if this publish fails the record is read again
                # and the still-pending occurrence retried, so the letter is never lost.
                await self._dead_letter(
                    DeadLetter(
                        record,
                        WORKFLOW_FAILED_REASON,
                        result.error or "",
                        trigger_id=compiled.trigger.id,
                    )
                )
        if self._outcome_events is not None:
            # Published before the outcome is written: a crash in between re-runs the pending
            # occurrence (same idempotency key) and publishes again, so an event may repeat
            # but is never lost.
            event = outcome_event(occurrence.id, compiled.trigger.id, outcome, datetime.now(UTC))
            await self._outcome_events.publish(event, key=compiled.trigger.id)
        finished = await self._store.finish_occurrence(occurrence.id, outcome)
        metrics.OCCURRENCES.labels(finished.status.value).inc()
        _log_outcome(finished, envelope, record)

    async def _call(
        self,
        compiled: CompiledTrigger,
        variables: dict[str, str],
        occurrence: Occurrence,
        record: SourceRecord,
    ) -> CallResult:
        traceparent = record.header("traceparent")
        with metrics.WORKFLOW_CALL_DURATION.time():
            result = await self._caller.run_workflow(
                compiled.trigger.workflow_id,
                variables,
                idempotency_key=occurrence.idempotency_key,
                traceparent=traceparent.decode("ascii", "replace") if traceparent else None,
                policy=self._retry_policy(compiled),
            )
        outcome = (
            "succeeded"
            if result.succeeded
            else ("transient_error" if result.transient else "permanent_error")
        )
        metrics.WORKFLOW_CALLS.labels(outcome).inc()
        return result

    def _retry_policy(self, compiled: CompiledTrigger) -> RetryPolicy | None:
        override = compiled.trigger.retry
        return None if override is None else override.over(self._caller.default_policy)

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


def _outcome_of(result: CallResult, occurrence: Occurrence, variables: dict[str, str]) -> Outcome:
    attempts = occurrence.attempts + result.attempts
    if result.instance is not None:
        return Outcome.succeeded(result.instance, attempts, variables)
    return Outcome.failed(result.error or "runWorkflow failed", attempts, variables)


def _log_outcome(occurrence: Occurrence, envelope: Envelope, record: SourceRecord) -> None:
    fields = {
        "occurrence_id": occurrence.id,
        "event_id": occurrence.event_id,
        "event_type": envelope.type,
        "trigger_id": occurrence.trigger_id,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "attempts": occurrence.attempts,
    }
    if occurrence.status is OccurrenceStatus.SUCCEEDED:
        log.info(
            "occurrence.succeeded", workflow_instance_id=occurrence.workflow_instance_id, **fields
        )
    else:
        log.warning("occurrence.failed", error=occurrence.error, **fields)


class LogOnlyDeadLetters:
    """The sink when `kafka.dead_letter_topic` is null: the pipeline's log line and counter
    are the only record of the letter."""

    async def publish(self, letter: DeadLetter) -> None:
        del letter
