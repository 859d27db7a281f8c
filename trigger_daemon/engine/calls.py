"""runWorkflow as the pipeline needs it: the retry policy and the circuit breaker around single
requests to `ports.WorkflowApi`.

A transient failure is retried with full-jitter backoff (honouring Retry-After). It spends one
of the policy's attempts only when another call succeeded since this call's previous try: then
the API is up and the failure is this workflow's. A failure while nothing succeeds is the API's
(an outage starting, or under way): the call waits and tries again without spending attempts.
When failures pile up the circuit opens: calls then wait for its probes, and the pipeline stops
fetching, so an outage delays events but does not fail them, whatever the policy's numbers.

Each request waits for its trigger's rate limit and concurrency cap and the daemon's
(`flow_control`); that wait spends nothing. Before each retry, and before a first try that had
to wait for the circuit or a limit, the caller asks
whether the try is still wanted (`still_wanted`): a replica whose occurrence was finished
elsewhere meanwhile (its partition moved while it was paused or waiting) stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import structlog

from trigger_daemon.core.circuit import CircuitBreaker
from trigger_daemon.core.retry import RetryPolicy, backoff_delay
from trigger_daemon.core.triggers import Trigger
from trigger_daemon.engine.flow_control import FlowControl
from trigger_daemon.ports import CallAttempt, WorkflowApi

log = structlog.get_logger(__name__)

_CIRCUIT_POLL_SECONDS = 0.05
CREDENTIALS_REFUSED = (
    "the orchestration API refused our credentials: check orchestration.token / client_id / "
    "client_secret"
)


@dataclass(frozen=True, slots=True)
class CallResult:
    """The end of one runWorkflow call, retries included."""

    attempts: int
    instance: dict[str, Any] | None = None
    error: str | None = None
    status_code: int | None = None
    transient: bool = False  # the last failure was transient: the retries ran out
    superseded: bool = False  # a retry was no longer wanted (`still_wanted` said so)

    @property
    def succeeded(self) -> bool:
        return self.instance is not None

    @property
    def outcome(self) -> str:
        """How the call ended, as the metric label and the span attribute name it."""
        if self.succeeded:
            return "succeeded"
        if self.superseded:
            return "superseded"
        return "transient_error" if self.transient else "permanent_error"


class WorkflowCaller:
    def __init__(
        self,
        api: WorkflowApi,
        default_policy: RetryPolicy,
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        flow: FlowControl | None = None,
    ) -> None:
        self._api = api
        self._flow = flow or FlowControl(sleep=sleep, clock=clock)
        self._default_policy = default_policy
        self.breaker = breaker or CircuitBreaker()
        self._sleep = sleep
        self._clock = clock
        self._unavailable_reason = "calls fail"

    @property
    def default_policy(self) -> RetryPolicy:
        return self._default_policy

    async def run_workflow(
        self,
        workflow_id: str,
        variables: Mapping[str, str],
        *,
        idempotency_key: str,
        traceparent: str | None = None,
        policy: RetryPolicy | None = None,
        still_wanted: Callable[[], Awaitable[bool]] | None = None,
        trigger: Trigger | None = None,
    ) -> CallResult:
        """Start `workflow_id`; the result says how many requests it took and how it ended.
        Each request waits for `trigger`'s limits and the daemon's (flow_control)."""
        policy = policy or self._default_policy
        requests = spent = 0
        since = self._clock()  # a success of another call after this shows the API is up
        while True:
            waited = await self._wait_for_circuit()
            async with self._request_slot(trigger) as throttled:
                # Any try after a wait may have been overtaken: the record's partition may
                # have moved to another replica, which ran it (this one was paused, waited
                # out an outage or a rate limit).
                if (requests or waited or throttled) and not await _wanted(still_wanted):
                    self.breaker.release(self._clock())
                    return CallResult(attempts=requests, error="superseded", superseded=True)
                attempt = await self._api.start_workflow(
                    workflow_id,
                    variables,
                    idempotency_key=idempotency_key,
                    traceparent=traceparent,
                )
            requests += 1
            now = self._clock()
            was_open = self.breaker.is_open
            if not attempt.transient:
                if attempt.succeeded:
                    self.breaker.record_success(now)
                else:
                    self.breaker.record_permanent(now)
                self._log_circuit_change(was_open, attempt)
                return _result(attempt, requests)
            if attempt.credentials_refused:
                self.breaker.record_refusal(now)
                counts = False
            else:
                counts = self.breaker.record_failure(now)
            self._log_circuit_change(was_open, attempt)
            if not counts:
                since = now  # an outage: the circuit's probes pace the next try
                continue
            if self.breaker.succeeded_since(since):
                spent += 1
                if spent >= policy.max_attempts:
                    return _result(attempt, requests)
            since = now
            await self._sleep(backoff_delay(policy, requests, attempt.retry_after))

    def _request_slot(self, trigger: Trigger | None) -> AbstractAsyncContextManager[float]:
        return nullcontext(0.0) if trigger is None else self._flow.request_slot(trigger)

    @property
    def unavailable_reason(self) -> str | None:
        """None while calls flow; else why they wait (readiness shows it)."""
        return self._unavailable_reason if self.breaker.is_open else None

    def _log_circuit_change(self, was_open: bool, attempt: CallAttempt) -> None:
        if self.breaker.is_open and not was_open:
            if attempt.credentials_refused:
                self._unavailable_reason = f"{CREDENTIALS_REFUSED} ({attempt.error})"
                log.error(
                    "orchestration.credentials_refused",
                    error=CREDENTIALS_REFUSED,
                    last_error=attempt.error,
                )
            else:
                self._unavailable_reason = f"calls fail: {attempt.error}"
                log.warning(
                    "orchestration.unavailable",
                    last_error=attempt.error,
                    detail="calls wait for the API, fetching pauses, one probe call per interval",
                )
        elif was_open and not self.breaker.is_open:
            log.info("orchestration.recovered")

    async def _wait_for_circuit(self) -> bool:
        """Until the circuit lets a call through; True when that took any waiting."""
        waited = False
        while not self.breaker.try_acquire(self._clock()):
            wait = self.breaker.seconds_until_probe(self._clock())
            await self._sleep(min(max(wait, _CIRCUIT_POLL_SECONDS), 1.0))
            waited = True
        return waited


async def _wanted(still_wanted: Callable[[], Awaitable[bool]] | None) -> bool:
    return still_wanted is None or await still_wanted()


def _result(attempt: CallAttempt, requests: int) -> CallResult:
    return CallResult(
        attempts=requests,
        instance=attempt.instance,
        error=attempt.error,
        status_code=attempt.status_code,
        transient=attempt.transient,
    )
