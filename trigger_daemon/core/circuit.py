"""A circuit breaker for the orchestration API: an outage pauses work instead of failing it.

Closed: calls flow. It opens when `failure_threshold` transient failures came in a row (across
all workflows) AND no call has succeeded for `quiet_seconds`: one workflow failing among good
ones is that call's problem (its retry policy runs out), not an outage. Open: no call is made
until `probe_interval` has passed; then one call is let through as a probe (half-open). A
success closes the circuit; a failed probe re-opens it with the interval doubled up to
`max_probe_interval`. Failures recorded while not closed are the outage's, not the call's:
they do not count against a call's retry policy (nor does any failure while nothing succeeds:
`succeeded_since`, read by the caller).

The one case it cannot tell apart: a single workflow failing while nothing else is called looks
like an outage, so its events wait (and readiness says so) rather than fail.

Time is passed in (`now`, seconds), so every transition is a plain function of its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class CircuitSettings:
    failure_threshold: int = 5
    quiet_seconds: float = 1.0
    probe_interval: float = 1.0
    max_probe_interval: float = 30.0


class CircuitBreaker:
    def __init__(self, settings: CircuitSettings | None = None) -> None:
        self._settings = settings or CircuitSettings()
        self._state = CircuitState.CLOSED
        self._failures_in_a_row = 0
        self._interval = self._settings.probe_interval
        self._next_probe_at = 0.0
        self._last_success: float | None = None

    @property
    def state(self) -> CircuitState:
        return self._state

    @property
    def is_open(self) -> bool:
        return self._state is not CircuitState.CLOSED

    def try_acquire(self, now: float) -> bool:
        """May a call go out now? In the open state, True once per probe interval."""
        if self._state is CircuitState.CLOSED:
            return True
        if self._state is CircuitState.OPEN and now >= self._next_probe_at:
            self._state = CircuitState.HALF_OPEN
            return True
        return False

    def seconds_until_probe(self, now: float) -> float:
        return max(0.0, self._next_probe_at - now)

    def succeeded_since(self, moment: float) -> bool:
        """Has a call succeeded (or been answered with a 4xx) after `moment`?"""
        return self._last_success is not None and self._last_success > moment

    def record_success(self, now: float) -> None:
        self._last_success = now
        self._state = CircuitState.CLOSED
        self._failures_in_a_row = 0
        self._interval = self._settings.probe_interval

    def record_failure(self, now: float) -> bool:
        """Record a transient failure. True when it counts against the call's retry policy
        (the circuit was closed and stays closed); False when it is part of an outage."""
        if self._state is CircuitState.HALF_OPEN:
            self._interval = min(self._interval * 2, self._settings.max_probe_interval)
            self._open(now)
            return False
        if self._state is CircuitState.OPEN:
            return False  # a call that left before the circuit opened
        self._failures_in_a_row += 1
        quiet = self._last_success is None or (
            now - self._last_success >= self._settings.quiet_seconds
        )
        if self._failures_in_a_row >= self._settings.failure_threshold and quiet:
            self._open(now)
            return False
        return True

    def release(self, now: float) -> None:
        """A call that acquired the probe did not make it (it was no longer wanted): the next
        caller may probe at once."""
        if self._state is CircuitState.HALF_OPEN:
            self._state = CircuitState.OPEN
            self._next_probe_at = now

    def record_refusal(self, now: float) -> None:
        """Our credentials were refused (401/403): every call would be, so open at once."""
        if self._state is CircuitState.HALF_OPEN:
            self._interval = min(self._interval * 2, self._settings.max_probe_interval)
        if self._state is not CircuitState.OPEN:
            self._open(now)

    def record_permanent(self, now: float) -> None:
        """A 4xx answer: the API is up, whatever it thought of this call."""
        self.record_success(now)

    def _open(self, now: float) -> None:
        self._state = CircuitState.OPEN
        self._next_probe_at = now + self._interval
