"""RecordHandler over the fakes: which records need work, what a matched record does to the
store and the API, and what is dead-lettered."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog

from trigger_daemon.core.events import decode
from trigger_daemon.core.occurrences import Occurrence, OccurrenceStatus, Outcome
from trigger_daemon.engine.records import WORKFLOW_FAILED_REASON, ClaimedElsewhere, RecordHandler
from trigger_daemon.engine.tenure import PartitionLost, Tenure
from trigger_daemon.errors import BrokerError, StoreError, WorkflowCallError
from trigger_daemon.ports import DeadLetter, SourceRecord
from trigger_daemon.testing import (
    InMemoryStore,
    RecordingDeadLetters,
    ScriptedWorkflowApi,
    permanent,
    succeeded,
    transient,
)

from .builders import (
    REQUESTS_TO_EXHAUST,
    SETTLE,
    ClaimedAwayDuringTheFirstTry,
    catalog_with,
    payment,
    record,
    runner_for,
)


class Engine:
    """A RecordHandler over the fakes, and the fakes to look at afterwards."""

    def __init__(
        self, store: InMemoryStore, api: ScriptedWorkflowApi, handler: RecordHandler
    ) -> None:
        self.store = store
        self.api = api
        self.handler = handler

    @classmethod
    async def with_triggers(
        cls,
        *definitions: dict[str, Any],
        api: ScriptedWorkflowApi | None = None,
        store: InMemoryStore | None = None,
        dead_letters: RecordingDeadLetters | None = None,
    ) -> Engine:
        store = store or InMemoryStore()
        api = api or ScriptedWorkflowApi()
        catalog = await catalog_with(store, *definitions)
        sink = dead_letters or RecordingDeadLetters()
        return cls(store, api, RecordHandler(catalog, store, runner_for(store, api), sink))

    async def deliver(self, delivered: SourceRecord) -> bool:
        """Triage and handle `delivered` as the pipeline does; False when it needed no work."""
        work = self.handler.triage(delivered, decode(delivered.value))
        if work is None:
            return False
        await self.handler.handle(work)
        return True

    async def occurrences(self) -> list[Occurrence]:
        """Every stored occurrence, oldest first."""
        return sorted(self.store.occurrences.values(), key=lambda o: o.seq)


# Triage


async def test_an_event_of_a_type_no_trigger_watches_needs_no_work() -> None:
    engine = await Engine.with_triggers(SETTLE)

    needed_work = await engine.deliver(record({"type": "SAVED_ACCOUNT", "payload": {}}))

    assert not needed_work
    assert engine.api.requests == []
    assert await engine.occurrences() == []


async def test_an_event_its_filter_rejects_needs_no_work() -> None:
    engine = await Engine.with_triggers(SETTLE)

    assert not await engine.deliver(record(payment(status="FAILED")))
    assert await engine.occurrences() == []


async def test_an_event_of_another_version_needs_no_work() -> None:
    engine = await Engine.with_triggers({**SETTLE, "version": "v3"})

    assert not await engine.deliver(record(payment(version="v2")))
    assert await engine.deliver(record(payment(version="v3")))
    assert len(engine.api.requests) == 1


async def test_a_filter_that_fails_on_an_event_is_logged_and_the_event_needs_no_work() -> None:
    engine = await Engine.with_triggers({**SETTLE, "filter": "abs(event.status) > `1`"})
    [trigger] = await engine.store.list_triggers()

    with structlog.testing.capture_logs() as logs:
        needed_work = await engine.deliver(record(payment(), offset=7))

    assert not needed_work
    [failure] = [log for log in logs if log["event"] == "filter.failed"]
    assert (failure["trigger_id"], failure["offset"]) == (trigger.id, 7)
    assert "abs" in failure["error"]


# Matched records


async def test_a_matched_event_runs_the_workflow_with_its_vars_and_records_the_success() -> None:
    engine = await Engine.with_triggers(SETTLE, api=ScriptedWorkflowApi(succeeded("wi-7")))
    [trigger] = await engine.store.list_triggers()

    await engine.deliver(record(payment("pay-9", amount=2**70), offset=3))

    [request] = engine.api.requests
    assert request.workflow_id == "settle-payment"
    assert request.variables == {"payment": "pay-9", "amount": str(2**70)}
    [occurrence] = await engine.occurrences()
    assert (occurrence.trigger_id, occurrence.event_id) == (trigger.id, "payments:0:3")
    assert occurrence.status is OccurrenceStatus.SUCCEEDED
    assert occurrence.workflow_instance_id == "wi-7"
    assert request.idempotency_key == occurrence.idempotency_key


async def test_every_matching_trigger_gets_its_own_occurrence_and_call() -> None:
    other = {**SETTLE, "name": "notify", "workflowID": "notify", "filter": None}
    engine = await Engine.with_triggers(SETTLE, other)

    await engine.deliver(record(payment()))

    assert sorted(r.workflow_id for r in engine.api.requests) == ["notify", "settle-payment"]
    occurrences = await engine.occurrences()
    assert len({o.trigger_id for o in occurrences}) == 2
    assert all(o.status is OccurrenceStatus.SUCCEEDED for o in occurrences)


async def test_the_events_idempotency_key_names_the_occurrence() -> None:
    engine = await Engine.with_triggers(SETTLE)
    [trigger] = await engine.store.list_triggers()

    await engine.deliver(record(payment(idempotency_key="k-1"), offset=5))

    assert engine.api.idempotency_keys == [f"{trigger.id}:SAVED_PAYMENT:k-1"]


async def test_a_records_traceparent_goes_with_the_call() -> None:
    engine = await Engine.with_triggers(SETTLE)
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    await engine.deliver(record(payment(), headers=(("traceparent", traceparent.encode()),)))

    assert [r.traceparent for r in engine.api.requests] == [traceparent]


async def test_a_traceparent_no_header_can_carry_is_not_passed_on() -> None:
    # A producer's line break in it made every try of the call raise in the HTTP client.
    engine = await Engine.with_triggers(SETTLE)
    header = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nX-Forged: 1"

    await engine.deliver(record(payment(), headers=(("traceparent", header),)))

    assert [r.traceparent for r in engine.api.requests] == [None]


# An occurrence claimed away by another replica while this one called


async def engine_waiting(
    api: ClaimedAwayDuringTheFirstTry, store: InMemoryStore, tenure: Tenure | None = None
) -> Engine:
    catalog = await catalog_with(store, SETTLE)
    handler = RecordHandler(
        catalog,
        store,
        runner_for(store, api),
        RecordingDeadLetters(),
        tenure=tenure,
        claimed_elsewhere_wait_seconds=0.5,
    )
    return Engine(store, api, handler)


async def test_a_record_whose_occurrence_was_claimed_away_waits_for_the_claimant_to_finish_it() -> (
    None
):
    # Committing at once left the occurrence pending for ever when the claimant then lost
    # the partition and gave the record up (the full soak found two such, once).
    store = InMemoryStore()
    api = ClaimedAwayDuringTheFirstTry(store)
    engine = await engine_waiting(api, store)

    async def the_claimant_finishes_it() -> None:
        await api.requested.wait()
        await asyncio.sleep(0.1)  # this replica has given the call up and waits
        [pending] = store.occurrences.values()
        await store.finish_occurrence(pending, Outcome.succeeded({"id": "wi-b"}, 1, {}))

    claimant = asyncio.create_task(the_claimant_finishes_it())
    await engine.deliver(record(payment()))
    await claimant

    [occurrence] = await engine.occurrences()
    assert occurrence.status is OccurrenceStatus.SUCCEEDED
    assert occurrence.workflow_instance_id == "wi-b"
    assert len(api.requests) == 1  # this replica did not call again


async def test_an_occurrence_its_claimant_leaves_pending_is_claimed_back_and_run() -> None:
    store = InMemoryStore()
    api = ClaimedAwayDuringTheFirstTry(store)
    engine = await engine_waiting(api, store)

    with pytest.raises(ClaimedElsewhere):
        await engine.deliver(record(payment()))
    assert [o.status for o in await engine.occurrences()] == [OccurrenceStatus.PENDING]
    await engine.deliver(record(payment()))  # handled again, as the pipeline does

    [occurrence] = await engine.occurrences()
    assert occurrence.status is OccurrenceStatus.SUCCEEDED
    assert occurrence.workflow_instance_id == "wi-a"
    assert occurrence.claimed_by == engine.handler.claimant
    assert len(api.requests) == 2


async def test_a_replica_losing_the_partition_while_it_waits_leaves_the_record() -> None:
    store = InMemoryStore()
    tenure = Tenure()
    api = ClaimedAwayDuringTheFirstTry(store, lambda: tenure.revoking.add(("payments", 0)))
    engine = await engine_waiting(api, store, tenure)

    with pytest.raises(PartitionLost):
        await engine.deliver(record(payment()))

    assert [o.status for o in await engine.occurrences()] == [OccurrenceStatus.PENDING]


# Redelivery


async def test_redelivered_event_runs_no_second_workflow() -> None:
    engine = await Engine.with_triggers(SETTLE)
    event = payment(idempotency_key="k-1")

    await engine.deliver(record(event, offset=1))
    await engine.deliver(record(event, offset=2))  # the same event published again

    assert len(engine.api.requests) == 1
    assert len(await engine.occurrences()) == 1


async def test_a_permanently_failed_event_redelivered_is_not_called_again() -> None:
    engine = await Engine.with_triggers(SETTLE, api=ScriptedWorkflowApi(permanent()))

    await engine.deliver(record(payment(), offset=1))
    await engine.deliver(record(payment(), offset=1))

    assert len(engine.api.requests) == 1
    [occurrence] = await engine.occurrences()
    assert occurrence.status is OccurrenceStatus.FAILED


class OutcomeWritesFailOnce(InMemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.failed_writes = 0

    async def finish_occurrence(self, occurrence: Occurrence, outcome: Outcome) -> Occurrence:
        if not self.failed_writes:
            self.failed_writes += 1
            raise StoreError("injected: disk full", retriable=True)
        return await super().finish_occurrence(occurrence, outcome)


async def test_a_record_whose_outcome_write_failed_keeps_the_answer_and_calls_once() -> None:
    engine = await Engine.with_triggers(SETTLE, store=OutcomeWritesFailOnce())

    await engine.deliver(record(payment()))

    [occurrence] = await engine.occurrences()
    assert occurrence.status is OccurrenceStatus.SUCCEEDED
    assert engine.api.idempotency_keys == [occurrence.idempotency_key]  # one call, not two


async def test_a_call_that_raises_leaves_its_occurrence_pending_for_the_next_try() -> None:
    api = ScriptedWorkflowApi(
        WorkflowCallError("injected: unclassified", retriable=True), succeeded()
    )
    engine = await Engine.with_triggers(SETTLE, api=api)

    with pytest.raises(WorkflowCallError):
        await engine.deliver(record(payment()))
    [pending] = await engine.occurrences()
    await engine.deliver(record(payment()))

    assert pending.status is OccurrenceStatus.PENDING
    [finished] = await engine.occurrences()
    assert finished.id == pending.id
    assert finished.status is OccurrenceStatus.SUCCEEDED


# Dead letters


async def test_an_unprocessable_record_is_dead_lettered_with_its_reason() -> None:
    letters = RecordingDeadLetters()
    engine = await Engine.with_triggers(SETTLE, dead_letters=letters)
    poison = record(b"not json at all", offset=4)

    await engine.deliver(poison)

    [letter] = letters.letters
    assert (letter.record, letter.reason, letter.trigger_id) == (poison, "not-json", None)
    assert engine.api.requests == []


async def test_exhausted_retries_fail_the_occurrence_and_dead_letter_the_record() -> None:
    letters = RecordingDeadLetters()
    api = ScriptedWorkflowApi(transient("HTTP 503: unavailable"))
    engine = await Engine.with_triggers(SETTLE, api=api, dead_letters=letters)
    [trigger] = await engine.store.list_triggers()
    delivered = record(payment())

    await engine.deliver(delivered)

    [occurrence] = await engine.occurrences()
    assert occurrence.status is OccurrenceStatus.FAILED
    assert occurrence.attempts == REQUESTS_TO_EXHAUST
    [letter] = letters.letters
    assert (letter.record, letter.reason, letter.trigger_id) == (
        delivered,
        WORKFLOW_FAILED_REASON,
        trigger.id,
    )
    assert letter.detail == "HTTP 503: unavailable"


async def test_a_permanent_failure_fails_the_occurrence_without_a_dead_letter() -> None:
    letters = RecordingDeadLetters()
    api = ScriptedWorkflowApi(permanent("HTTP 404: no such workflow"))
    engine = await Engine.with_triggers(SETTLE, api=api, dead_letters=letters)

    await engine.deliver(record(payment()))

    [occurrence] = await engine.occurrences()
    assert (occurrence.status, occurrence.error) == (
        OccurrenceStatus.FAILED,
        "HTTP 404: no such workflow",
    )
    assert letters.letters == []


class BrokerDown:
    async def publish(self, letter: DeadLetter) -> None:
        raise BrokerError("injected: broker unavailable", retriable=True)


async def test_a_dead_letter_that_cannot_be_published_leaves_the_occurrence_pending() -> None:
    store, api = InMemoryStore(), ScriptedWorkflowApi(transient())
    catalog = await catalog_with(store, SETTLE)
    handler = RecordHandler(catalog, store, runner_for(store, api), BrokerDown())
    delivered = record(payment())
    work = handler.triage(delivered, decode(delivered.value))
    assert work is not None

    with pytest.raises(BrokerError):
        await handler.handle(work)

    [occurrence] = store.occurrences.values()
    assert occurrence.status is OccurrenceStatus.PENDING  # handled again, letter and all
