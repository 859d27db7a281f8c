"""Retry decisions: which statuses are transient, how long to back off, how Retry-After reads."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from trigger_daemon.core.retry import (
    RetryPolicy,
    backoff_delay,
    is_transient_status,
    parse_retry_after,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=10, initial_backoff_seconds=0.5, max_backoff_seconds=8.0)


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_timeouts_throttling_and_server_outages_are_transient(status: int) -> None:
    assert is_transient_status(status)


@pytest.mark.parametrize("status", [200, 201, 301, 400, 401, 403, 404, 409, 422, 501, 505])
def test_other_statuses_are_not_transient(status: int) -> None:
    assert not is_transient_status(status)


@pytest.mark.parametrize(
    ("failed_attempts", "ceiling"),
    [(0, 0.5), (1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0), (40, 8.0)],
)
def test_backoff_is_full_jitter_under_a_doubling_capped_ceiling(
    failed_attempts: int, ceiling: float
) -> None:
    rand = random.Random(7)
    delays = [backoff_delay(POLICY, failed_attempts, rand=rand) for _ in range(500)]
    assert all(0.0 <= delay <= ceiling for delay in delays)
    assert max(delays) > 0.9 * ceiling  # spread over the whole range, not a fixed step
    assert min(delays) < 0.1 * ceiling


def test_backoff_with_the_same_seed_is_reproducible() -> None:
    first = [backoff_delay(POLICY, n, rand=random.Random(3)) for n in range(1, 6)]
    again = [backoff_delay(POLICY, n, rand=random.Random(3)) for n in range(1, 6)]
    assert first == again


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(5.0, 5.0), (0.0, None), (8.0, 8.0), (30.0, 8.0), (3600.0, 8.0)],
)
def test_retry_after_is_a_floor_and_the_max_backoff_a_cap(
    retry_after: float, expected: float | None
) -> None:
    delay = backoff_delay(POLICY, 1, retry_after, rand=random.Random(1))
    if expected is None:
        assert 0.0 <= delay <= 0.5
    else:
        assert delay == expected


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        ("Fri, 02 Jan 2026 03:04:35 GMT", 30.0),
        (format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(header: str, seconds: float) -> None:
    assert parse_retry_after(header, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("header", [None, "", "soon", "-5", "1.5e3", "Friday"])
def test_retry_after_that_is_absent_or_garbage_is_none(header: str | None) -> None:
    assert parse_retry_after(header, now=NOW) is None
