"""Running one occurrence: render its vars, call runWorkflow, publish and write the outcome.

Shared by the pipeline's record handler and by re-drive (`redrive`), so both call, record and
log an occurrence the same way. What differs is passed in: the trace context, a hook that runs
before the outcome is written (the handler dead-letters exhausted calls there), and the log
context (a record's topic/partition/offset, or the re-drive).

Two rules keep a workflow from running twice outside a crash:
- An answer the API has given is kept: when the outcome write fails (the store restarting),
  the write alone is retried until it lands; the call is never made again for it.
- Before each retry of a call, and before a first try made long after the occurrence was
  begun, the occurrence is read back: if it is final, another replica (the partition's new
  owner, while this one was paused) finished it, and this one stops. The record's partition
  is asked about first (`still_held`, tenure.py): a replica that lost it raises PartitionLost,
  leaving the record to the next owner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from trigger_daemon.core.expressions import ExpressionError
from trigger_daemon.core.occurrences import Occurrence, OccurrenceStatus, Outcome, outcome_event
from trigger_daemon.core.retry import RetryPolicy, backoff_delay
from trigger_daemon.core.triggers import CompiledTrigger
from trigger_daemon.engine.calls import CallResult, WorkflowCaller
from trigger_daemon.engine.tenure import PartitionLost
from trigger_daemon.errors import StoreError
from trigger_daemon.observability import metrics
from trigger_daemon.observability.tracing import Tracing
from trigger_daemon.ports import OutcomeSink, Store

log = structlog.get_logger(__name__)

BeforeWrite = Callable[[CallResult], Awaitable[None]]
StillHeld = Callable[[], Awaitable[bool]]

# The back-off between tries of an outcome write. Its max_attempts is never read: the write is
# retried until it lands, since giving up would ask the API again for an answer it gave.
OUTCOME_WRITE_RETRY = RetryPolicy(initial_backoff_seconds=0.1, max_backoff_seconds=5.0)
# A first try this long after the occurrence was begun reads it back first; shorter than any
# sensible kafka.session_timeout_ms, so a replica paused long enough to lose its partitions
# always checks. Fresh occurrences (nearly all) cost no read.
_READ_BACK_AFTER = timedelta(seconds=2)
_FRESH_ANSWER_SECONDS = 1.0


class OccurrenceRunner:
    def __init__(
        self,
        store: Store,
        caller: WorkflowCaller,
        outcome_events: OutcomeSink | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._store = store
        self._caller = caller
        self._outcome_events = outcome_events
        self._tracing = tracing or Tracing()

    async def run(
        self,
        compiled: CompiledTrigger,
        occurrence: Occurrence,
        document: Mapping[str, Any],
        *,
        traceparent: str | None = None,
        before_write: BeforeWrite | None = None,
        log_context: Mapping[str, Any] | None = None,
        still_held: StillHeld | None = None,
    ) -> Occurrence:
        """Take `occurrence` to a final outcome and return it as stored.

        `traceparent` is the record's own header: sent as it came when tracing is off; when
        on, the call span (a child of the current event span) sends its own. `still_held`
        says whether this replica still holds the record's partition; when it no longer
        does, PartitionLost is raised and nothing is written."""
        partition_lost = False

        async def still_wanted() -> bool:
            nonlocal partition_lost
            if still_held is not None and not await still_held():
                partition_lost = True
                return False
            return await self._still_ours(occurrence)

        try:
            variables = compiled.render_vars(document)
        except ExpressionError as exc:
            outcome = Outcome.failed(str(exc), occurrence.attempts)
        else:
            if _begun_long_ago(occurrence) and not await still_wanted():
                return await self._given_up(occurrence, compiled, log_context, partition_lost)
            result = await self._call(compiled, variables, occurrence, traceparent, still_wanted)
            if result.superseded:
                return await self._given_up(occurrence, compiled, log_context, partition_lost)
            outcome = _outcome_of(result, occurrence, variables)
            if before_write is not None:
                await before_write(result)
        if self._outcome_events is not None:
            # Published before the outcome is written: a crash in between runs the pending
            # occurrence again (same idempotency key) and publishes again, so an event may
            # repeat but is never lost.
            event = outcome_event(occurrence.id, compiled.trigger.id, outcome, datetime.now(UTC))
            await self._outcome_events.publish(event, key=compiled.trigger.id)
        finished = await self._write(occurrence, outcome)
        metrics.series(metrics.OCCURRENCES, finished.status.value).inc()
        _log_outcome(finished, compiled, log_context or {})
        return finished

    async def _call(
        self,
        compiled: CompiledTrigger,
        variables: dict[str, str],
        occurrence: Occurrence,
        traceparent: str | None,
        still_wanted: Callable[[], Awaitable[bool]],
    ) -> CallResult:
        with (
            self._tracing.call_span(compiled.trigger, occurrence, traceparent) as trace,
            metrics.WORKFLOW_CALL_DURATION.time(),
        ):
            result = await self._caller.run_workflow(
                compiled.trigger.workflow_id,
                variables,
                idempotency_key=occurrence.idempotency_key,
                traceparent=trace.traceparent,
                policy=self._retry_policy(compiled),
                still_wanted=still_wanted,
                trigger=compiled.trigger,
            )
            trace.finish(result)
        metrics.series(metrics.WORKFLOW_CALLS, result.outcome).inc()
        return result

    async def _write(self, occurrence: Occurrence, outcome: Outcome) -> Occurrence:
        failures = 0
        while True:
            try:
                return await self._store.finish_occurrence(occurrence, outcome)
            except StoreError as exc:
                failures += 1
                log.warning(
                    "occurrence.write_failed_will_retry",
                    occurrence_id=occurrence.id,
                    trigger_id=occurrence.trigger_id,
                    event_id=occurrence.event_id,
                    error=str(exc),
                    failures=failures,
                )
                await asyncio.sleep(backoff_delay(OUTCOME_WRITE_RETRY, failures))

    async def _still_ours(self, occurrence: Occurrence) -> bool:
        """Whether `occurrence` is still pending and still claimed as this run began it: a
        replica that now owns the record claims it when it begins it again."""
        while True:
            asked_at = time.monotonic()
            try:
                stored = await self._store.get_occurrence(occurrence.id)
            except StoreError:
                return True  # cannot tell; the Idempotency-Key still guards the API
            if stored.is_final or stored.claimed_by != occurrence.claimed_by:
                return False
            # A slow answer may describe the store before a pause of this process, during
            # which another replica may have finished the occurrence: ask again.
            if time.monotonic() - asked_at < _FRESH_ANSWER_SECONDS:
                return True

    async def _given_up(
        self,
        occurrence: Occurrence,
        compiled: CompiledTrigger,
        context: Mapping[str, Any] | None,
        partition_lost: bool,
    ) -> Occurrence:
        if partition_lost:
            raise PartitionLost(f"occurrence {occurrence.id}: its partition is being revoked")
        stored = await self._store.get_occurrence(occurrence.id)
        log.info(
            "occurrence.superseded",
            occurrence_id=occurrence.id,
            event_id=occurrence.event_id,
            trigger_id=occurrence.trigger_id,
            event_type=compiled.trigger.event,
            status=stored.status.value,
            detail="finished or claimed elsewhere while this replica waited; no further call",
            **(context or {}),
        )
        return stored

    def _retry_policy(self, compiled: CompiledTrigger) -> RetryPolicy | None:
        override = compiled.trigger.retry
        return None if override is None else override.over(self._caller.default_policy)


def _begun_long_ago(occurrence: Occurrence) -> bool:
    """Begun long enough ago that another replica may have run it meanwhile: this one was
    paused between beginning it and calling, or it is a redelivered pending occurrence."""
    return datetime.now(UTC) - occurrence.date > _READ_BACK_AFTER


def _outcome_of(result: CallResult, occurrence: Occurrence, variables: dict[str, str]) -> Outcome:
    attempts = occurrence.attempts + result.attempts
    if result.instance is not None:
        return Outcome.succeeded(result.instance, attempts, variables)
    return Outcome.failed(result.error or "runWorkflow failed", attempts, variables)


def _log_outcome(
    occurrence: Occurrence, compiled: CompiledTrigger, context: Mapping[str, Any]
) -> None:
    fields = {
        "occurrence_id": occurrence.id,
        "event_id": occurrence.event_id,
        "event_type": compiled.trigger.event,
        "trigger_id": occurrence.trigger_id,
        "attempts": occurrence.attempts,
        **context,
    }
    if occurrence.status is OccurrenceStatus.SUCCEEDED:
        log.info(
            "occurrence.succeeded", workflow_instance_id=occurrence.workflow_instance_id, **fields
        )
    else:
        log.warning("occurrence.failed", error=occurrence.error, **fields)
