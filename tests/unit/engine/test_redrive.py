"""Redrive over the fakes: failed occurrences run again with the same idempotency key; any
other occurrence is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trigger_daemon.core.occurrences import NewOccurrence, Occurrence, OccurrenceStatus, Outcome
from trigger_daemon.engine.redrive import Redrive
from trigger_daemon.errors import ConflictError, NotFoundError
from trigger_daemon.testing import InMemoryStore, ScriptedWorkflowApi, permanent, succeeded
from trigger_daemon.triggers.catalog import TriggerCatalog

from .builders import SETTLE, catalog_with, payment, runner_for

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Setup:
    """A Redrive over the fakes, with one trigger (SETTLE) to store occurrences of."""

    def __init__(
        self,
        store: InMemoryStore,
        api: ScriptedWorkflowApi,
        catalog: TriggerCatalog,
        trigger_id: str,
    ) -> None:
        self.store = store
        self.api = api
        self.catalog = catalog
        self.redrive = Redrive(catalog, store, runner_for(store, api))
        self.trigger_id = trigger_id

    @classmethod
    async def with_trigger(cls, api: ScriptedWorkflowApi | None = None) -> Setup:
        store, api = InMemoryStore(), api or ScriptedWorkflowApi()
        catalog = await catalog_with(store, SETTLE)
        [trigger] = await store.list_triggers()
        return cls(store, api, catalog, trigger.id)

    async def occurrence(
        self, status: OccurrenceStatus, event_id: str = "e-1", date: datetime = T0
    ) -> Occurrence:
        """An occurrence of the trigger, stored with `status` (failed after one attempt)."""
        new = NewOccurrence(self.trigger_id, event_id, payment(event_id), date)
        [begun] = await self.store.begin_occurrences([new])
        if status is OccurrenceStatus.FAILED:
            return await self.store.finish_occurrence(begun, Outcome.failed("HTTP 503", 1))
        if status is OccurrenceStatus.SUCCEEDED:
            return await self.store.finish_occurrence(begun, Outcome.succeeded({"id": "wi"}, 1, {}))
        return begun


async def test_a_failed_occurrence_runs_again_with_the_same_idempotency_key() -> None:
    setup = await Setup.with_trigger(ScriptedWorkflowApi(succeeded("wi-2")))
    failed = await setup.occurrence(OccurrenceStatus.FAILED, event_id="pay-5")

    retried = await setup.redrive.retry(failed.trigger_id, failed.id)

    [request] = setup.api.requests
    assert request.idempotency_key == failed.idempotency_key
    assert request.variables == {"payment": "pay-5", "amount": "1000"}
    assert (retried.id, retried.status, retried.workflow_instance_id) == (
        failed.id,
        OccurrenceStatus.SUCCEEDED,
        "wi-2",
    )
    assert retried.attempts == failed.attempts + 1
    assert await setup.store.get_occurrence(failed.id) == retried


async def test_a_retry_that_fails_again_leaves_the_occurrence_failed_with_the_new_error() -> None:
    setup = await Setup.with_trigger(ScriptedWorkflowApi(permanent("HTTP 404: gone")))
    failed = await setup.occurrence(OccurrenceStatus.FAILED)

    retried = await setup.redrive.retry(failed.trigger_id, failed.id)

    assert (retried.status, retried.error) == (OccurrenceStatus.FAILED, "HTTP 404: gone")


@pytest.mark.parametrize("status", [OccurrenceStatus.PENDING, OccurrenceStatus.SUCCEEDED])
async def test_an_occurrence_that_did_not_fail_is_refused_and_not_run(
    status: OccurrenceStatus,
) -> None:
    setup = await Setup.with_trigger()
    occurrence = await setup.occurrence(status)

    with pytest.raises(ConflictError, match="only failed occurrences"):
        await setup.redrive.retry(occurrence.trigger_id, occurrence.id)

    assert setup.api.requests == []
    assert await setup.store.get_occurrence(occurrence.id) == occurrence


async def test_a_failed_occurrence_is_retried_once_by_two_retries() -> None:
    setup = await Setup.with_trigger()
    failed = await setup.occurrence(OccurrenceStatus.FAILED)

    await setup.redrive.retry(failed.trigger_id, failed.id)
    with pytest.raises(ConflictError):
        await setup.redrive.retry(failed.trigger_id, failed.id)

    assert len(setup.api.requests) == 1


async def test_an_occurrence_asked_for_under_another_trigger_is_not_found() -> None:
    setup = await Setup.with_trigger()
    failed = await setup.occurrence(OccurrenceStatus.FAILED)

    with pytest.raises(NotFoundError):
        await setup.redrive.retry("another-trigger", failed.id)

    assert setup.api.requests == []
    assert (await setup.store.get_occurrence(failed.id)).status is OccurrenceStatus.FAILED


async def test_an_occurrence_of_a_deleted_trigger_is_not_found_and_stays_failed() -> None:
    setup = await Setup.with_trigger()
    failed = await setup.occurrence(OccurrenceStatus.FAILED)
    await setup.catalog.delete(setup.trigger_id)

    with pytest.raises(NotFoundError, match=setup.trigger_id):
        await setup.redrive.retry(failed.trigger_id, failed.id)

    assert setup.api.requests == []
    assert await setup.store.get_occurrence(failed.id) == failed


async def test_retry_all_runs_each_failed_occurrence_oldest_first_back_to_since() -> None:
    setup = await Setup.with_trigger()
    too_old = await setup.occurrence(OccurrenceStatus.FAILED, "e-0", T0 - timedelta(days=1))
    older = await setup.occurrence(OccurrenceStatus.FAILED, "e-1", T0)
    await setup.occurrence(OccurrenceStatus.SUCCEEDED, "e-2", T0 + timedelta(minutes=1))
    newer = await setup.occurrence(OccurrenceStatus.FAILED, "e-3", T0 + timedelta(minutes=2))

    retried = [o async for o in setup.redrive.retry_all(setup.trigger_id, since=T0)]

    assert [o.id for o in retried] == [older.id, newer.id]
    assert setup.api.idempotency_keys == [older.idempotency_key, newer.idempotency_key]
    assert (await setup.store.get_occurrence(too_old.id)).status is OccurrenceStatus.FAILED


async def test_failed_occurrences_are_found_beyond_the_first_page() -> None:
    setup = await Setup.with_trigger()
    first = await setup.occurrence(OccurrenceStatus.FAILED, "e-first", T0)
    for n in range(600):  # more than one page of the store's listing
        await setup.occurrence(OccurrenceStatus.SUCCEEDED, f"e-{n}", T0 + timedelta(seconds=n))

    failed = [o async for o in setup.redrive.failed_occurrences(setup.trigger_id)]

    assert [o.id for o in failed] == [first.id]


async def test_failed_occurrences_of_an_unknown_trigger_is_not_found() -> None:
    setup = await Setup.with_trigger()

    with pytest.raises(NotFoundError, match="trigger nope not found"):
        [o async for o in setup.redrive.failed_occurrences("nope")]
