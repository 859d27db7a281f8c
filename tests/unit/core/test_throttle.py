"""The token bucket and the limits read from a trigger."""

from datetime import UTC, datetime

import pytest

from trigger_daemon.core.throttle import UNLIMITED, Limits, TokenBucket
from trigger_daemon.core.triggers import Trigger, parse_definition


def test_a_full_bucket_releases_its_burst_then_one_per_interval() -> None:
    bucket = TokenBucket(rate_per_second=10, burst=3, now=0.0)
    waits = [bucket.reserve(0.0) for _ in range(6)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2, 0.3])


def test_an_idle_bucket_holds_no_more_than_its_burst() -> None:
    bucket = TokenBucket(rate_per_second=2, burst=2, now=0.0)
    for _ in range(2):
        bucket.reserve(0.0)
    # An hour idle: still only two at once, then the steady rate.
    waits = [bucket.reserve(3600.0) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.0, 0.5, 1.0])
    assert bucket.tokens(3600.0) == pytest.approx(-2.0)  # owed to the two waiting


def test_requests_spread_over_time_wait_only_for_what_they_lack() -> None:
    bucket = TokenBucket(rate_per_second=1, burst=1, now=0.0)
    assert bucket.reserve(0.0) == 0.0
    assert bucket.reserve(0.4) == pytest.approx(0.6)
    assert bucket.reserve(5.0) == 0.0


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
