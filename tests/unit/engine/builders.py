"""The engine's parts over the in-memory fakes (`trigger_daemon.testing`), and events to feed
them; shared by the engine's unit tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from trigger_daemon.core.circuit import CircuitBreaker
from trigger_daemon.core.occurrences import NewOccurrence
from trigger_daemon.core.retry import RetryPolicy
from trigger_daemon.core.triggers import CompiledTrigger, parse_definition
from trigger_daemon.engine.calls import WorkflowCaller
from trigger_daemon.engine.runner import OccurrenceRunner
from trigger_daemon.ports import CallAttempt, OutcomeSink, SourceRecord
from trigger_daemon.testing import (
    AmongGoodCalls,
    InMemoryStore,
    ScriptedWorkflowApi,
    succeeded,
    transient,
)
from trigger_daemon.triggers.catalog import TriggerCatalog

# Three attempts a call, retried at once: the tests wait for nothing.
POLICY = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.001, max_backoff_seconds=0.001)
# Requests an always-failing call makes under `caller_for`: one per attempt.
REQUESTS_TO_EXHAUST = POLICY.max_attempts

SETTLE = {
    "name": "settle",
    "event": "SAVED_PAYMENT",
    "filter": "event.status == 'SUCCEEDED'",
    "workflowID": "settle-payment",
    "vars": {"payment": "event.id", "amount": "event.amount"},
}


def payment(
    payment_id: str = "pay-1", status: str = "SUCCEEDED", amount: int = 1000, **envelope: Any
) -> dict[str, Any]:
    """A SAVED_PAYMENT event; `envelope` adds top-level fields (idempotency_key, version)."""
    payload = {"id": payment_id, "status": status, "amount": amount}
    return {"app": "payments", "type": "SAVED_PAYMENT", "payload": payload, **envelope}


def record(
    event: dict[str, Any] | bytes, offset: int = 0, headers: tuple[tuple[str, bytes], ...] = ()
) -> SourceRecord:
    value = event if isinstance(event, bytes) else json.dumps(event).encode()
    return SourceRecord("payments", 0, offset, key=None, value=value, headers=headers)


async def catalog_with(store: InMemoryStore, *definitions: dict[str, Any]) -> TriggerCatalog:
    """A catalog whose triggers are `definitions`, created through the API path."""
    catalog = TriggerCatalog(store)
    await catalog.refresh()
    for definition in definitions:
        await catalog.create(parse_definition(definition))
    return catalog


async def compiled_trigger(store: InMemoryStore, definition: dict[str, Any]) -> CompiledTrigger:
    catalog = await catalog_with(store, definition)
    [trigger] = await store.list_triggers()
    compiled = catalog.compiled(trigger.id)
    assert compiled is not None
    return compiled


def caller_for(api: ScriptedWorkflowApi) -> WorkflowCaller:
    """A caller on an API that is up for other calls, so a failing call's transient failures
    are its own and spend its policy's attempts."""
    breaker = CircuitBreaker()
    return WorkflowCaller(AmongGoodCalls(api, breaker), POLICY, breaker)


def runner_for(
    store: InMemoryStore, api: ScriptedWorkflowApi, outcome_events: OutcomeSink | None = None
) -> OccurrenceRunner:
    return OccurrenceRunner(store, caller_for(api), outcome_events)


class ClaimedAwayDuringTheFirstTry(ScriptedWorkflowApi):
    """The first request fails in flight; meanwhile another replica begins the occurrence
    again, and so claims it (it took the record over while this one was paused). Then
    `after_the_claim` runs (a revocation, say)."""

    def __init__(
        self, store: InMemoryStore, after_the_claim: Callable[[], None] = lambda: None
    ) -> None:
        super().__init__(transient("timed out", status_code=None), succeeded("wi-a"))
        self._store = store
        self._after_the_claim = after_the_claim

    async def start_workflow(
        self,
        workflow_id: str,
        variables: Mapping[str, str],
        *,
        idempotency_key: str,
        traceparent: str | None = None,
    ) -> CallAttempt:
        if not self.requests:
            [mine] = self._store.occurrences.values()
            other = NewOccurrence(
                mine.trigger_id, mine.event_id, mine.event, mine.date, "replica-b"
            )
            await self._store.begin_occurrences([other])
            self._after_the_claim()
        return await super().start_workflow(
            workflow_id, variables, idempotency_key=idempotency_key, traceparent=traceparent
        )
