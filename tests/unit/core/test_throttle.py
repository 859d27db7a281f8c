"""The token bucket and the limits read from a trigger."""

from datetime import UTC, datetime

import pytest

from trigger_daemon.core.throttle import UNLIMITED, Limits, TokenBucket
from trigger_daemon.core.triggers import Trigger, parse_definition


def sent(bucket: TokenBucket, at: float, count: int) -> list[float]:
    """When each of `count` requests, waiting from `at` one after another, is sent."""
    now, times = at, []
    for _ in range(count):
        while wait := bucket.take(now):
            now += wait
        times.append(now)
    return times


def test_a_full_bucket_releases_its_burst_then_one_per_interval() -> None:
    bucket = TokenBucket(rate_per_second=10, burst=3, now=0.0)
    assert sent(bucket, 0.0, 6) == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2, 0.3])


def test_an_idle_bucket_holds_no_more_than_its_burst() -> None:
    bucket = TokenBucket(rate_per_second=2, burst=2, now=0.0)
    sent(bucket, 0.0, 2)
    # An hour idle: still only two at once, then the steady rate.
    assert sent(bucket, 3600.0, 4) == pytest.approx([3600.0, 3600.0, 3600.5, 3601.0])
    assert bucket.tokens(3601.0) == pytest.approx(0.0)


def test_a_request_that_must_wait_takes_nothing() -> None:
    bucket = TokenBucket(rate_per_second=1, burst=1, now=0.0)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.4) == pytest.approx(0.6)
    assert bucket.take(0.4) == pytest.approx(0.6)  # asking again took nothing either
    assert bucket.take(1.0) == 0.0


def test_late_senders_never_exceed_burst_plus_rate_in_any_window() -> None:
    bucket = TokenBucket(rate_per_second=20, burst=1, now=0.0)
    # Waiters that wake 0.3 s late, in clumps, as on a busy event loop.
    sends, now = [], 0.0
    while len(sends) < 200:
        wait = bucket.take(now)
        if wait:
            now += wait + (0.3 if len(sends) % 10 == 0 else 0.0)
        else:
            sends.append(now)
    for start in sends:
        assert sum(start <= at < start + 1.0 for at in sends) <= 21


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_a_bucket_needs_a_positive_rate_and_burst(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(rate, burst, now=0.0)


def trigger(**fields: object) -> Trigger:
    definition = parse_definition({"event": "E", "workflowID": "wf", **fields})
    return Trigger(**definition.model_dump(), id="t", created_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_a_triggers_limits_in_requests_per_second() -> None:
    limited = trigger(
        rateLimit={"requestsPerUnit": 120, "unit": "minute", "burst": 5}, maxConcurrency=3
    )
    assert Limits.of_trigger(limited) == Limits(calls_per_second=2.0, burst=5, max_concurrency=3)
    hourly = trigger(rateLimit={"requestsPerUnit": 36, "unit": "hour"})
    assert Limits.of_trigger(hourly) == Limits(calls_per_second=0.01, burst=1)
    assert Limits.of_trigger(trigger()) == UNLIMITED
    assert UNLIMITED.unlimited
