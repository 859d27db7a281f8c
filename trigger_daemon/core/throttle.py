"""Rate limits and concurrency caps as values, and the token bucket behind rate limits: pure,
with the time passed in.

A bucket holds at most `burst` tokens and gains `rate` a second; a request takes one when it is
sent, not when it starts waiting. So however late a waiter wakes, any window of T seconds lets
through at most `burst + rate * T` requests, and an idle bucket never holds more than `burst`:
a quiet trigger releases at most `burst` requests when events arrive.
"""

from __future__ import annotations

from dataclasses import dataclass

from trigger_daemon.core.triggers import RateLimit, Trigger

# Sleeping exactly the answered wait can leave a token a rounding error short of whole.
_ROUNDING = 1e-9


class TokenBucket:
    def __init__(self, rate_per_second: float, burst: int, now: float) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError(f"a bucket needs a positive rate and burst, got {rate_per_second}")
        self.rate = rate_per_second
        self.burst = burst
        self._tokens = float(burst)
        self._updated = now

    def take(self, now: float) -> float:
        """Take a token if one is there (0.0); else take nothing and answer the seconds
        until one will be."""
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1 - _ROUNDING:
            self._tokens = max(0.0, self._tokens - 1)
            return 0.0
        return (1 - self._tokens) / self.rate

    def tokens(self, now: float) -> float:
        """The tokens there now."""
        return min(self.burst, self._tokens + (now - self._updated) * self.rate)


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
