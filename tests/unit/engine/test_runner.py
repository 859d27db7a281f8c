"""OccurrenceRunner over the fakes: vars rendered, the call made, the outcome written once and
announced before it is written."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from trigger_daemon.core.circuit import CircuitBreaker
from trigger_daemon.core.events import Envelope, envelope_from_object
from trigger_daemon.core.expressions import document_for
from trigger_daemon.core.occurrences import NewOccurrence, Occurrence, OccurrenceStatus, Outcome
from trigger_daemon.core.triggers import CompiledTrigger
from trigger_daemon.engine.calls import CallResult, WorkflowCaller
from trigger_daemon.engine.runner import OccurrenceRunner
from trigger_daemon.errors import StoreError
from trigger_daemon.ports import CallAttempt
from trigger_daemon.testing import (
    AmongGoodCalls,
    InMemoryStore,
    RecordingOutcomeEvents,
    ScriptedWorkflowApi,
    permanent,
    succeeded,
    transient,
)

from .builders import (
    POLICY,
    REQUESTS_TO_EXHAUST,
    SETTLE,
    ClaimedAwayDuringTheFirstTry,
    compiled_trigger,
    payment,
    runner_for,
)


async def pending(
    store: InMemoryStore, compiled: CompiledTrigger, event: dict[str, Any]
) -> Occurrence:
    [occurrence] = await store.begin_occurrences(
        [NewOccurrence(compiled.trigger.id, "e-1", event, datetime.now(UTC))]
    )
    return occurrence


def document(event: dict[str, Any]) -> dict[str, Any]:
    envelope = envelope_from_object(event)
    assert isinstance(envelope, Envelope)
    return document_for(envelope)


async def test_the_vars_are_rendered_from_the_event_and_sent_with_the_occurrences_key() -> None:
    store, api = InMemoryStore(), ScriptedWorkflowApi()
    compiled = await compiled_trigger(store, SETTLE)
    event = payment("pay-3", amount=12)
    occurrence = await pending(store, compiled, event)

    await runner_for(store, api).run(compiled, occurrence, document(event), traceparent="tp")

    [request] = api.requests
    assert (request.workflow_id, request.variables) == (
        "settle-payment",
        {"payment": "pay-3", "amount": "12"},
    )
    assert (request.idempotency_key, request.traceparent) == (occurrence.idempotency_key, "tp")


async def test_a_success_is_written_with_the_instance_the_vars_and_every_attempt() -> None:
    store = InMemoryStore()
    api = ScriptedWorkflowApi(transient(), succeeded("wi-1"))
    compiled = await compiled_trigger(store, SETTLE)
    event = payment("pay-3", amount=12)
    occurrence = await pending(store, compiled, event)

    finished = await runner_for(store, api).run(compiled, occurrence, document(event))

    assert finished == await store.get_occurrence(occurrence.id)
    assert finished.status is OccurrenceStatus.SUCCEEDED
    assert (finished.workflow_instance_id, finished.workflow_instance) == ("wi-1", {"id": "wi-1"})
    assert finished.vars == {"payment": "pay-3", "amount": "12"}
    assert finished.attempts == 2


async def test_a_permanent_failure_is_written_with_its_error_after_one_attempt() -> None:
    store = InMemoryStore()
    api = ScriptedWorkflowApi(permanent("HTTP 400: bad vars", status_code=400))
    compiled = await compiled_trigger(store, SETTLE)
    occurrence = await pending(store, compiled, payment())

    finished = await runner_for(store, api).run(compiled, occurrence, document(payment()))

    assert (finished.status, finished.error, finished.attempts) == (
        OccurrenceStatus.FAILED,
        "HTTP 400: bad vars",
        1,
    )


async def test_a_var_that_finds_nothing_fails_the_occurrence_without_a_call() -> None:
    store, api = InMemoryStore(), ScriptedWorkflowApi()
    compiled = await compiled_trigger(store, {**SETTLE, "vars": {"fee": "event.fee"}})
    occurrence = await pending(store, compiled, payment())

    finished = await runner_for(store, api).run(compiled, occurrence, document(payment()))

    assert api.requests == []
    assert finished.status is OccurrenceStatus.FAILED
    assert "'fee'" in (finished.error or "")
    assert finished.attempts == 0


async def test_attempts_add_up_over_runs_of_one_occurrence() -> None:
    store = InMemoryStore()
    api = ScriptedWorkflowApi(*[transient()] * REQUESTS_TO_EXHAUST, succeeded())
    compiled = await compiled_trigger(store, SETTLE)
    occurrence = await pending(store, compiled, payment())
    runner = runner_for(store, api)

    failed = await runner.run(compiled, occurrence, document(payment()))
    reopened = await store.reopen_occurrence(failed.id)
    finished = await runner.run(compiled, reopened, document(payment()))

    assert failed.attempts == REQUESTS_TO_EXHAUST
    assert finished.status is OccurrenceStatus.SUCCEEDED
    assert finished.attempts == REQUESTS_TO_EXHAUST + 1


async def test_a_triggers_own_retry_policy_replaces_the_default() -> None:
    store, api = InMemoryStore(), ScriptedWorkflowApi(transient())
    compiled = await compiled_trigger(store, {**SETTLE, "retry": {"maxAttempts": 1}})
    occurrence = await pending(store, compiled, payment())

    finished = await runner_for(store, api).run(compiled, occurrence, document(payment()))

    assert len(api.requests) == 1
    assert finished.attempts == 1


class OutcomeEventsSeeingTheStore(RecordingOutcomeEvents):
    """Records, with each event, the status its occurrence had in the store at that moment."""

    def __init__(self, store: InMemoryStore) -> None:
        super().__init__()
        self._store = store
        self.stored_status: list[OccurrenceStatus] = []

    async def publish(self, event: Mapping[str, Any], key: str) -> None:
        occurrence = await self._store.get_occurrence(event["payload"]["id"])
        self.stored_status.append(occurrence.status)
        await super().publish(event, key)


async def test_the_outcome_event_is_published_before_the_outcome_is_written() -> None:
    store, api = InMemoryStore(), ScriptedWorkflowApi(succeeded("wi-1"))
    events = OutcomeEventsSeeingTheStore(store)
    compiled = await compiled_trigger(store, SETTLE)
    occurrence = await pending(store, compiled, payment())

    await runner_for(store, api, events).run(compiled, occurrence, document(payment()))

    [(key, event)] = events.published
    assert key == compiled.trigger.id
    assert (event["app"], event["type"]) == ("orchestration", "SUCCEEDED_TRIGGER")
    assert event["payload"] == {
        "id": occurrence.id,
        "triggerID": compiled.trigger.id,
        "workflowInstanceID": "wi-1",
    }
    assert events.stored_status == [OccurrenceStatus.PENDING]


async def test_a_failure_is_announced_as_failed_trigger_with_its_error() -> None:
    store, api = InMemoryStore(), ScriptedWorkflowApi(permanent("HTTP 404: gone"))
    events = RecordingOutcomeEvents()
    compiled = await compiled_trigger(store, SETTLE)
    occurrence = await pending(store, compiled, payment())

    await runner_for(store, api, events).run(compiled, occurrence, document(payment()))

    [(_, event)] = events.published
    assert event["type"] == "FAILED_TRIGGER"
    assert event["payload"]["error"] == "HTTP 404: gone"


async def test_the_before_write_hook_sees_the_call_result_while_the_occurrence_is_pending() -> None:
    store, api = InMemoryStore(), ScriptedWorkflowApi(transient("HTTP 502: bad gateway"))
    compiled = await compiled_trigger(store, SETTLE)
    occurrence = await pending(store, compiled, payment())
    seen: list[tuple[CallResult, OccurrenceStatus]] = []

    async def before_write(result: CallResult) -> None:
        seen.append((result, (await store.get_occurrence(occurrence.id)).status))

    await runner_for(store, api).run(
        compiled, occurrence, document(payment()), before_write=before_write
    )

    [(result, status)] = seen
    assert (result.error, result.transient, result.attempts) == (
        "HTTP 502: bad gateway",
        True,
        REQUESTS_TO_EXHAUST,
    )
    assert status is OccurrenceStatus.PENDING


class OutcomeWritesFailing(InMemoryStore):
    """The store restarting: the first `failures` outcome writes fail (connection closed)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures_left = failures

    async def finish_occurrence(self, occurrence: Occurrence, outcome: Outcome) -> Occurrence:
        if self.failures_left:
            self.failures_left -= 1
            raise StoreError("record outcome: connection is closed", retriable=True)
        return await super().finish_occurrence(occurrence, outcome)


async def test_an_answer_is_kept_while_its_outcome_write_fails_and_never_asked_again() -> None:
    store, api = OutcomeWritesFailing(failures=2), ScriptedWorkflowApi(succeeded("wi-7"))
    events = RecordingOutcomeEvents()
    compiled = await compiled_trigger(store, SETTLE)
    occurrence = await pending(store, compiled, payment())

    finished = await runner_for(store, api, events).run(compiled, occurrence, document(payment()))

    assert len(api.requests) == 1
    assert len(events.published) == 1
    assert (finished.status, finished.workflow_instance_id) == (OccurrenceStatus.SUCCEEDED, "wi-7")
    assert await store.get_occurrence(occurrence.id) == finished


class FinishedElsewhereAfterFirstTry:
    """The first request fails in flight; meanwhile another replica (the partition's new
    owner) runs the occurrence to success."""

    def __init__(self, store: InMemoryStore, occurrence: Occurrence) -> None:
        self.store, self.occurrence, self.requests = store, occurrence, 0

    async def start_workflow(
        self,
        workflow_id: str,
        variables: Mapping[str, str],
        *,
        idempotency_key: str,
        traceparent: str | None = None,
    ) -> CallAttempt:
        self.requests += 1
        await self.store.finish_occurrence(
            self.occurrence, Outcome.succeeded({"id": "wi-other"}, 1, dict(variables))
        )
        return transient("timed out", status_code=None)


async def test_a_retry_stops_when_another_replica_finished_the_occurrence() -> None:
    store = InMemoryStore()
    compiled = await compiled_trigger(store, SETTLE)
    occurrence = await pending(store, compiled, payment())
    api = FinishedElsewhereAfterFirstTry(store, occurrence)
    events = RecordingOutcomeEvents()
    hooked: list[CallResult] = []

    async def before_write(result: CallResult) -> None:
        hooked.append(result)

    breaker = CircuitBreaker()
    caller = WorkflowCaller(AmongGoodCalls(api, breaker), POLICY, breaker)
    runner = OccurrenceRunner(store, caller, events)
    returned = await runner.run(
        compiled, occurrence, document(payment()), before_write=before_write
    )

    assert api.requests == 1  # no second try
    assert (returned.status, returned.workflow_instance_id) == (
        OccurrenceStatus.SUCCEEDED,
        "wi-other",
    )
    assert events.published == []  # the finisher announced it, not this replica
    assert hooked == []  # so nothing is dead-lettered here either


class CountingReads(InMemoryStore):
    """Counts the runner's reads of an occurrence (the fake's own writes read it too)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self._writing = False

    async def get_occurrence(self, occurrence_id: str) -> Occurrence:
        self.reads += 0 if self._writing else 1
        return await super().get_occurrence(occurrence_id)

    async def finish_occurrence(self, occurrence: Occurrence, outcome: Outcome) -> Occurrence:
        self._writing = True
        try:
            return await super().finish_occurrence(occurrence, outcome)
        finally:
            self._writing = False


async def test_a_replica_resuming_long_after_beginning_an_occurrence_finished_elsewhere_stops() -> (
    None
):
    store, api = CountingReads(), ScriptedWorkflowApi()
    compiled = await compiled_trigger(store, SETTLE)
    begun_before_a_pause = datetime.now(UTC) - timedelta(seconds=30)
    [occurrence] = await store.begin_occurrences(
        [NewOccurrence(compiled.trigger.id, "e-1", payment(), begun_before_a_pause)]
    )
    await store.finish_occurrence(occurrence, Outcome.succeeded({"id": "wi-other"}, 1, {}))

    returned = await runner_for(store, api).run(compiled, occurrence, document(payment()))

    assert api.requests == []
    assert returned.workflow_instance_id == "wi-other"


async def test_a_fresh_occurrence_is_called_without_reading_it_back() -> None:
    store, api = CountingReads(), ScriptedWorkflowApi()
    compiled = await compiled_trigger(store, SETTLE)
    occurrence = await pending(store, compiled, payment())

    await runner_for(store, api).run(compiled, occurrence, document(payment()))

    assert (len(api.requests), store.reads) == (1, 0)


class SlowFirstAnswer(InMemoryStore):
    """The first read answers late, with the state from before a pause: pending."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.paused = False  # set once the test's own writes are done

    async def get_occurrence(self, occurrence_id: str) -> Occurrence:
        stored = await super().get_occurrence(occurrence_id)
        if not self.paused:
            return stored
        self.reads += 1
        if self.reads == 1:
            await asyncio.sleep(1.1)
            return dataclasses.replace(stored, status=OccurrenceStatus.PENDING)
        return stored


async def test_a_slow_answer_that_the_occurrence_is_pending_is_asked_again() -> None:
    store = SlowFirstAnswer()
    compiled = await compiled_trigger(store, SETTLE)
    begun_before_a_pause = datetime.now(UTC) - timedelta(seconds=30)
    [occurrence] = await store.begin_occurrences(
        [NewOccurrence(compiled.trigger.id, "e-1", payment(), begun_before_a_pause)]
    )
    await store.finish_occurrence(occurrence, Outcome.succeeded({"id": "wi-other"}, 1, {}))
    api = ScriptedWorkflowApi()
    store.paused = True

    returned = await runner_for(store, api).run(compiled, occurrence, document(payment()))

    assert api.requests == []
    assert returned.workflow_instance_id == "wi-other"
    assert store.reads >= 2


async def test_a_retry_stops_when_the_new_owner_claimed_the_pending_occurrence() -> None:
    store = InMemoryStore()
    compiled = await compiled_trigger(store, SETTLE)
    [occurrence] = await store.begin_occurrences(
        [NewOccurrence(compiled.trigger.id, "e-1", payment(), datetime.now(UTC), "replica-a")]
    )
    api = ClaimedAwayDuringTheFirstTry(store)
    breaker = CircuitBreaker()
    caller = WorkflowCaller(AmongGoodCalls(api, breaker), POLICY, breaker)

    returned = await OccurrenceRunner(store, caller).run(compiled, occurrence, document(payment()))

    assert len(api.requests) == 1  # no second try while the new owner's call is on its way
    assert returned.status is OccurrenceStatus.PENDING  # the new owner will write the outcome
    assert returned.claimed_by == "replica-b"
