"""WorkflowCaller: retry policy and circuit breaker over a scripted API, with fake time."""

from collections.abc import Mapping
from datetime import UTC, datetime

import structlog

from trigger_daemon.core.circuit import CircuitBreaker, CircuitSettings, CircuitState
from trigger_daemon.core.retry import RetryPolicy
from trigger_daemon.core.triggers import Trigger, parse_definition
from trigger_daemon.engine.calls import WorkflowCaller
from trigger_daemon.engine.flow_control import FlowControl
from trigger_daemon.ports import CallAttempt
from trigger_daemon.testing import ScriptedWorkflowApi, permanent, succeeded, transient

OK = succeeded("instance-1")
DOWN = transient("connection refused", status_code=None)
BAD = permanent("HTTP 404: no such workflow", status_code=404)
POLICY = RetryPolicy(max_attempts=3, initial_backoff_seconds=1.0, max_backoff_seconds=8.0)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def caller(api: ScriptedWorkflowApi, time: FakeTime, threshold: int = 100) -> WorkflowCaller:
    breaker = CircuitBreaker(CircuitSettings(failure_threshold=threshold, probe_interval=5.0))
    return WorkflowCaller(api, POLICY, breaker, sleep=time.sleep, clock=lambda: time.now)


def caller_among_good_calls(api: ScriptedWorkflowApi, time: FakeTime) -> WorkflowCaller:
    """A caller whose other calls (workflow "good") succeed while any call backs off: the
    API is up, so a failing call's failures are its own."""

    async def sleep_with_traffic(seconds: float) -> None:
        await time.sleep(seconds)
        await subject.run_workflow("good", {}, idempotency_key="g")

    breaker = CircuitBreaker(CircuitSettings(failure_threshold=1))
    subject = WorkflowCaller(api, POLICY, breaker, sleep=sleep_with_traffic, clock=lambda: time.now)
    return subject


class OutageUntil:
    """The API answers 503 until `time.now` reaches `until`, then succeeds."""

    def __init__(self, time: FakeTime, until: float) -> None:
        self.time, self.until, self.requests = time, until, 0

    async def start_workflow(
        self,
        workflow_id: str,
        variables: Mapping[str, str],
        *,
        idempotency_key: str,
        traceparent: str | None = None,
    ) -> CallAttempt:
        self.requests += 1
        self.time.now += 0.01  # each answer takes a little time
        return OK if self.time.now >= self.until else transient("HTTP 503", status_code=503)


async def test_a_transient_failure_then_success_takes_two_requests() -> None:
    time = FakeTime()
    result = await caller(ScriptedWorkflowApi(DOWN, OK), time).run_workflow(
        "w", {}, idempotency_key="t:e"
    )
    assert result.succeeded
    assert result.attempts == 2
    assert len(time.sleeps) == 1


async def test_retries_stop_at_the_policys_attempts_while_other_calls_succeed() -> None:
    api = ScriptedWorkflowApi(by_workflow={"bad": [DOWN], "good": [OK]})
    result = await caller_among_good_calls(api, FakeTime()).run_workflow(
        "bad", {}, idempotency_key="t:e"
    )
    assert not result.succeeded
    assert result.transient
    # Its first failure spends nothing (no other call succeeded while it was out); each later
    # one follows a good call, so the policy's three attempts are spent by requests 2 to 4.
    assert result.attempts == 4
    assert [r.workflow_id for r in api.requests].count("bad") == 4


async def test_a_per_call_policy_overrides_the_default() -> None:
    api = ScriptedWorkflowApi(by_workflow={"bad": [DOWN], "good": [OK]})
    subject = caller_among_good_calls(api, FakeTime())
    await subject.run_workflow("good", {}, idempotency_key="g")
    result = await subject.run_workflow(
        "bad", {}, idempotency_key="t:e", policy=RetryPolicy(max_attempts=1)
    )
    assert result.attempts == 2  # the first failure spends nothing (see above)


async def test_failures_while_nothing_succeeds_spend_no_attempts() -> None:
    # The circuit never opens here (threshold 100): the rule alone keeps the event alive.
    time = FakeTime()
    api = ScriptedWorkflowApi(*[DOWN] * 8, OK)
    result = await caller(api, time).run_workflow("w", {}, idempotency_key="t:e")
    assert result.succeeded
    assert result.attempts == 9  # three times the policy's attempts, none of them spent


async def test_a_short_policy_rides_out_an_outage_that_starts_mid_call() -> None:
    """Five attempts, 0.1 s to 1 s apart, against ten seconds of 503: before the circuit's
    threshold is reached the failures already spend nothing, since nothing succeeds."""
    time = FakeTime()
    api = OutageUntil(time, until=10.0)
    short = RetryPolicy(max_attempts=5, initial_backoff_seconds=0.1, max_backoff_seconds=1.0)
    subject = WorkflowCaller(api, short, CircuitBreaker(), sleep=time.sleep, clock=lambda: time.now)
    result = await subject.run_workflow("w", {}, idempotency_key="t:e")
    assert result.succeeded
    assert time.now >= 10.0
    assert api.requests > short.max_attempts


async def test_a_retry_no_longer_wanted_is_not_sent() -> None:
    api = ScriptedWorkflowApi(DOWN)
    checks: list[int] = []

    async def still_wanted() -> bool:
        checks.append(len(api.requests))
        return False  # e.g. another replica finished the occurrence meanwhile

    result = await caller(api, FakeTime()).run_workflow(
        "w", {}, idempotency_key="t:e", still_wanted=still_wanted
    )
    assert result.superseded
    assert not result.succeeded
    assert (result.attempts, len(api.requests), checks) == (1, 1, [1])


async def test_a_first_try_does_not_ask_whether_it_is_wanted() -> None:
    async def never_asked() -> bool:
        raise AssertionError("asked before the first try")

    result = await caller(ScriptedWorkflowApi(OK), FakeTime()).run_workflow(
        "w", {}, idempotency_key="t:e", still_wanted=never_asked
    )
    assert result.succeeded


async def test_a_permanent_failure_is_not_retried() -> None:
    api = ScriptedWorkflowApi(BAD)
    result = await caller(api, FakeTime()).run_workflow("w", {}, idempotency_key="t:e")
    assert result.error == BAD.error
    assert result.status_code == 404
    assert not result.transient
    assert [request.workflow_id for request in api.requests] == ["w"]


async def test_during_an_outage_calls_wait_for_the_api_instead_of_spending_attempts() -> None:
    time = FakeTime()
    outage = [DOWN] * 12 + [OK]  # far more failures than the policy allows
    subject = caller(ScriptedWorkflowApi(*outage), time, threshold=2)
    result = await subject.run_workflow("w", {}, idempotency_key="t:e")
    assert result.succeeded
    assert result.attempts == 13
    assert time.now > 5.0  # it waited for probes, it did not fail
    assert not subject.breaker.is_open


async def test_one_always_failing_workflow_among_good_ones_exhausts_its_policy() -> None:
    time = FakeTime()
    api = ScriptedWorkflowApi(by_workflow={"bad": [DOWN], "good": [OK]})
    breaker = CircuitBreaker(CircuitSettings(failure_threshold=1))

    async def sleep_with_traffic(seconds: float) -> None:
        # Good calls between the bad one's attempts keep the circuit closed.
        await time.sleep(seconds)
        await subject.run_workflow("good", {}, idempotency_key="g")

    subject = WorkflowCaller(api, POLICY, breaker, sleep=sleep_with_traffic, clock=lambda: time.now)
    await subject.run_workflow("good", {}, idempotency_key="g")
    result = await subject.run_workflow("bad", {}, idempotency_key="b")
    assert not result.succeeded
    assert result.attempts == POLICY.max_attempts + 1  # the first failure spends nothing
    assert not subject.breaker.is_open


async def test_the_circuit_opening_and_closing_are_logged_once_each() -> None:
    time = FakeTime()
    outage = [transient("HTTP 503: down for maintenance")] * 12 + [OK]
    subject = caller(ScriptedWorkflowApi(*outage), time, threshold=2)
    with structlog.testing.capture_logs() as logs:
        await subject.run_workflow("w", {}, idempotency_key="t:e")
    changes = [line for line in logs if line["event"].startswith("orchestration.")]
    assert [line["event"] for line in changes] == [
        "orchestration.unavailable",
        "orchestration.recovered",
    ]
    assert changes[0]["last_error"] == "HTTP 503: down for maintenance"


async def test_refused_credentials_open_the_circuit_at_once_and_spend_nothing() -> None:
    time = FakeTime()
    refused = CallAttempt(
        error="runWorkflow w: HTTP 401: unauthorized",
        status_code=401,
        transient=True,
        credentials_refused=True,
    )
    subject = caller(ScriptedWorkflowApi(refused, refused, refused, OK), time)
    with structlog.testing.capture_logs() as logs:
        result = await subject.run_workflow("w", {}, idempotency_key="t:e")
    assert result.succeeded
    assert result.attempts == 4  # three refusals spent none of the policy's three attempts
    events = [line["event"] for line in logs]
    assert events == ["orchestration.credentials_refused", "orchestration.recovered"]
    assert logs[0]["error"] == (
        "the orchestration API refused our credentials: check orchestration.token / "
        "client_id / client_secret"
    )
    assert time.now >= 5.0  # it waited for the circuit's probes (every 5 s here)


async def test_a_first_try_that_waited_for_the_circuit_asks_whether_it_is_still_wanted() -> None:
    time = FakeTime()
    subject = caller(ScriptedWorkflowApi(OK), time)
    subject.breaker.record_refusal(time.now)  # the circuit is open when the call begins

    async def finished_elsewhere() -> bool:
        return False

    result = await subject.run_workflow(
        "w", {}, idempotency_key="t:e", still_wanted=finished_elsewhere
    )
    assert result.superseded
    assert result.attempts == 0
    assert subject.breaker.state is CircuitState.OPEN  # the probe was released


def paced_caller(api: ScriptedWorkflowApi, time: FakeTime) -> tuple[WorkflowCaller, Trigger]:
    """A caller, and a trigger allowed one request an hour."""
    flow = FlowControl(sleep=time.sleep, clock=lambda: time.now)
    subject = WorkflowCaller(api, POLICY, sleep=time.sleep, clock=lambda: time.now, flow=flow)
    definition = parse_definition(
        {"event": "E", "workflowID": "w", "rateLimit": {"requestsPerUnit": 1, "unit": "hour"}}
    )
    paced = Trigger(**definition.model_dump(), id="t-hourly", created_at=datetime.now(UTC))
    return subject, paced


async def test_a_throttled_request_waits_spends_nothing_and_asks_if_still_wanted() -> None:
    time = FakeTime()
    api = ScriptedWorkflowApi(OK, OK)
    subject, paced = paced_caller(api, time)
    asked: list[float] = []

    async def still_wanted() -> bool:
        asked.append(time.now)
        return True

    first = await subject.run_workflow("w", {}, idempotency_key="t:1", trigger=paced)
    second = await subject.run_workflow(
        "w", {}, idempotency_key="t:2", trigger=paced, still_wanted=still_wanted
    )
    assert (first.attempts, second.attempts) == (1, 1)
    assert second.succeeded
    assert asked == [3600.0]  # after the hour's wait, before the request
    assert time.now == 3600.0


async def test_a_request_overtaken_while_throttled_is_not_sent() -> None:
    time = FakeTime()
    api = ScriptedWorkflowApi(OK)
    subject, paced = paced_caller(api, time)
    await subject.run_workflow("w", {}, idempotency_key="t:1", trigger=paced)

    async def finished_elsewhere() -> bool:
        return False

    result = await subject.run_workflow(
        "w", {}, idempotency_key="t:2", trigger=paced, still_wanted=finished_elsewhere
    )
    assert result.superseded
    assert len(api.requests) == 1
