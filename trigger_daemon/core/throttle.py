"""Rate limits and concurrency caps as values, and the token bucket behind rate limits: pure,
with the time passed in.

A bucket holds at most `burst` tokens and gains `rate` a second. Each request reserves the next
token: `reserve(now)` answers how long to wait for it (0 when one is there). Reserving ahead
keeps waiters in arrival order and each one's wait known at once, and an idle bucket never
holds more than `burst`, so a quiet trigger releases at most `burst` requests when events
arrive.
"""

from __future__ import annotations

from dataclasses import dataclass

from trigger_daemon.core.triggers import RateLimit, Trigger


class TokenBucket:
    def __init__(self, rate_per_second: float, burst: int, now: float) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError(f"a bucket needs a positive rate and burst, got {rate_per_second}")
        self.rate = rate_per_second
        self.burst = burst
        # The moment the bucket would be full again; tokens = (now - empty_since) * rate.
        self._empty_since = now - burst / rate_per_second

    def reserve(self, now: float) -> float:
        """Take the next token; the seconds until it is there (0: at once)."""
        full_since = now - self.burst / self.rate
        self._empty_since = max(self._empty_since, full_since) + 1 / self.rate
        return max(0.0, self._empty_since - now)

    def tokens(self, now: float) -> float:
        """Tokens available now (negative: owed to requests that already reserved)."""
        return min(self.burst, (now - self._empty_since) * self.rate)


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits one request is under: a trigger's, or the daemon's."""

    calls_per_second: float | None = None
    burst: int = 1
    max_concurrency: int | None = None

    @classmethod
    def of_trigger(cls, trigger: Trigger) -> Limits:
        rate: RateLimit | None = trigger.rate_limit
        return cls(
            calls_per_second=None if rate is None else rate.per_second,
            burst=1 if rate is None else rate.burst,
            max_concurrency=trigger.max_concurrency,
        )

    @property
    def unlimited(self) -> bool:
        return self.calls_per_second is None and self.max_concurrency is None


UNLIMITED = Limits()
