"""The circuit breaker's transitions, with time passed in."""

from trigger_daemon.core.circuit import CircuitBreaker, CircuitSettings, CircuitState

SETTINGS = CircuitSettings(
    failure_threshold=3, quiet_seconds=2.0, probe_interval=1.0, max_probe_interval=4.0
)


def opened() -> CircuitBreaker:
    breaker = CircuitBreaker(SETTINGS)
    for _ in range(3):
        breaker.record_failure(now=0.0)
    return breaker


def test_failures_below_the_threshold_count_against_the_call() -> None:
    breaker = CircuitBreaker(SETTINGS)
    assert breaker.record_failure(now=0.0) is True
    assert breaker.record_failure(now=0.0) is True
    assert breaker.state is CircuitState.CLOSED


def test_the_failure_that_reaches_the_threshold_opens_and_does_not_count() -> None:
    breaker = CircuitBreaker(SETTINGS)
    breaker.record_failure(now=0.0)
    breaker.record_failure(now=0.0)
    assert breaker.record_failure(now=0.0) is False
    assert breaker.state is CircuitState.OPEN


def test_failures_soon_after_a_success_are_the_calls_not_an_outage() -> None:
    breaker = CircuitBreaker(SETTINGS)
    breaker.record_success(now=10.0)
    assert all(breaker.record_failure(now=11.0) for _ in range(10))
    assert breaker.state is CircuitState.CLOSED
    assert breaker.record_failure(now=12.0) is False  # nothing succeeded for 2 s: an outage
    assert breaker.state is CircuitState.OPEN


def test_a_success_between_failures_resets_the_count() -> None:
    breaker = CircuitBreaker(SETTINGS)
    for _ in range(10):
        breaker.record_failure(now=0.0)
        breaker.record_failure(now=0.0)
        breaker.record_success(now=0.0)
    assert breaker.state is CircuitState.CLOSED


def test_a_permanent_answer_proves_the_api_is_up() -> None:
    breaker = CircuitBreaker(SETTINGS)
    breaker.record_failure(now=0.0)
    breaker.record_failure(now=0.0)
    breaker.record_permanent(now=0.0)
    assert breaker.record_failure(now=0.0) is True


def test_open_lets_one_probe_through_per_interval() -> None:
    breaker = opened()
    assert breaker.try_acquire(now=0.5) is False
    assert breaker.seconds_until_probe(now=0.5) == 0.5
    assert breaker.try_acquire(now=1.0) is True
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.try_acquire(now=1.0) is False  # one probe at a time


def test_a_failed_probe_reopens_with_a_longer_interval_up_to_the_cap() -> None:
    breaker = opened()
    intervals = []
    now = 0.0
    for _ in range(4):
        now += breaker.seconds_until_probe(now)
        assert breaker.try_acquire(now)
        assert breaker.record_failure(now) is False
        intervals.append(breaker.seconds_until_probe(now))
    assert intervals == [2.0, 4.0, 4.0, 4.0]


def test_a_successful_probe_closes_the_circuit() -> None:
    breaker = opened()
    assert breaker.try_acquire(now=1.0)
    breaker.record_success(now=0.0)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.try_acquire(now=1.0) is True


def test_late_failures_of_calls_sent_before_opening_do_not_count() -> None:
    breaker = opened()
    assert breaker.record_failure(now=0.1) is False
    assert breaker.state is CircuitState.OPEN


def test_a_probe_released_unused_lets_the_next_caller_probe_at_once() -> None:
    breaker = CircuitBreaker(SETTINGS)
    for n in range(SETTINGS.failure_threshold):
        breaker.record_failure(float(n) + 10)
    assert breaker.state is CircuitState.OPEN
    probe_at = 10 + SETTINGS.failure_threshold + SETTINGS.probe_interval
    assert breaker.try_acquire(probe_at)
    assert not breaker.try_acquire(probe_at)  # half-open: one probe at a time
    breaker.release(probe_at)
    assert breaker.try_acquire(probe_at)
