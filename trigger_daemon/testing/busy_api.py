"""AmongGoodCalls: a `ports.WorkflowApi` wrapped as if other calls succeeded while each of its
requests was in flight.

The caller spends a retry policy's attempt on a transient failure only when another call
succeeded meanwhile (an API that is up for others: the failure is the workflow's own). Tests
about retries and exhaustion, rather than outages, wrap their API in this to say so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from trigger_daemon.core.circuit import CircuitBreaker
from trigger_daemon.ports import CallAttempt, WorkflowApi


class AmongGoodCalls:
    def __init__(
        self,
        api: WorkflowApi,
        breaker: CircuitBreaker,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._breaker = breaker
        self._clock = clock

    async def start_workflow(
        self,
        workflow_id: str,
        variables: Mapping[str, str],
        *,
        idempotency_key: str,
        traceparent: str | None = None,
    ) -> CallAttempt:
        answer = await self._api.start_workflow(
            workflow_id, variables, idempotency_key=idempotency_key, traceparent=traceparent
        )
        self._breaker.record_success(self._clock())  # another call's, answered meanwhile
        return answer
