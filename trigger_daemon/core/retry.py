"""Retry decisions as data: which answers are transient, how long to wait before the next try."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 10
    initial_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 60.0


def is_transient_status(status: int) -> bool:
    return status in TRANSIENT_STATUSES


def backoff_delay(
    policy: RetryPolicy,
    failed_attempts: int,
    retry_after_seconds: float | None = None,
    rand: random.Random | None = None,
) -> float:
    """Seconds to wait after `failed_attempts` failures: full jitter, or Retry-After if longer.

    Both are capped by the policy's max backoff so a server cannot stall a partition forever.
    """
    ceiling = min(
        policy.max_backoff_seconds,
        policy.initial_backoff_seconds * 2 ** max(failed_attempts - 1, 0),
    )
    jittered = (rand or random).uniform(0, ceiling)
    if retry_after_seconds is not None:
        jittered = max(jittered, retry_after_seconds)
    return min(jittered, policy.max_backoff_seconds)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date. None when absent or garbage."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
