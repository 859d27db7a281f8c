"""WorkflowCaller: retry policy and circuit breaker over a scripted API, with fake time."""

from trigger_daemon.core.circuit import CircuitBreaker, CircuitSettings
from trigger_daemon.core.retry import RetryPolicy
from trigger_daemon.engine.calls import WorkflowCaller
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


async def test_a_transient_failure_then_success_takes_two_requests() -> None:
    time = FakeTime()
    result = await caller(ScriptedWorkflowApi(DOWN, OK), time).run_workflow(
        "w", {}, idempotency_key="t:e"
    )
    assert result.succeeded
    assert result.attempts == 2
    assert len(time.sleeps) == 1


async def test_retries_stop_at_the_policys_attempts() -> None:
    api = ScriptedWorkflowApi(DOWN)
    result = await caller(api, FakeTime()).run_workflow("w", {}, idempotency_key="t:e")
    assert not result.succeeded
    assert result.transient
    assert result.attempts == 3
    assert len(api.requests) == 3


async def test_a_per_call_policy_overrides_the_default() -> None:
    api = ScriptedWorkflowApi(DOWN)
    result = await caller(api, FakeTime()).run_workflow(
        "w", {}, idempotency_key="t:e", policy=RetryPolicy(max_attempts=1)
    )
    assert result.attempts == 1


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
    assert result.attempts == POLICY.max_attempts
    assert not subject.breaker.is_open
