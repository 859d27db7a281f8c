"""Rate limits and concurrency caps on runWorkflow requests: per trigger and daemon-wide.

Each request takes, in this order, a slot of its trigger's `maxConcurrency`, a token of its
trigger's `rateLimit`, a daemon-wide slot (`orchestration.max_concurrency`) and a daemon-wide
token (`orchestration.max_calls_per_second`); the slots are held until the answer. A request
that must wait simply waits: it is not failed and spends no retry, its ordering key waits
behind it while other keys and triggers go on, and when waiting records fill
`pipeline.max_in_flight` fetching pauses as it always does. Per-trigger slots come before
the daemon-wide ones, so a throttled trigger never holds a daemon-wide slot while it waits.

Limits are per process: with N replicas, a budget of B calls a second is B/N per replica.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from trigger_daemon.core.throttle import UNLIMITED, Limits, TokenBucket
from trigger_daemon.core.triggers import Trigger
from trigger_daemon.observability import metrics


class _Gate:
    """One set of limits in force: a bucket and a semaphore, each when limited."""

    def __init__(self, limits: Limits, now: float) -> None:
        self.limits = limits
        rate = limits.calls_per_second
        self.bucket = None if rate is None else TokenBucket(rate, limits.burst, now)
        self.queue = asyncio.Lock()  # waiters for a token, in arrival order
        cap = limits.max_concurrency
        self.slots = None if cap is None else asyncio.Semaphore(cap)


class _TriggerGate(_Gate):
    """A trigger's gate, with its metric series (looked up once: labels() is slow)."""

    def __init__(self, limits: Limits, now: float, trigger: Trigger) -> None:
        super().__init__(limits, now)
        self.trigger = trigger
        self.throttled = metrics.THROTTLED_SECONDS.labels(trigger.id)
        self.in_flight = metrics.TRIGGER_CALLS_IN_FLIGHT.labels(trigger.id)


class FlowControl:
    def __init__(
        self,
        daemon_limits: Limits = UNLIMITED,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sleep = sleep
        self._clock = clock
        self._daemon = _Gate(daemon_limits, clock())
        self._triggers: dict[str, _TriggerGate] = {}

    @asynccontextmanager
    async def request_slot(self, trigger: Trigger) -> AsyncIterator[float]:
        """Held around one request; yields the seconds it waited for the limits."""
        gate = self._gate_of(trigger)
        held: list[asyncio.Semaphore] = []
        waited = 0.0
        try:
            if not (gate.limits.unlimited and self._daemon.limits.unlimited):
                started = self._clock()
                for each in (gate, self._daemon):
                    if each.slots is not None:
                        await each.slots.acquire()
                        held.append(each.slots)
                    if each.bucket is not None:
                        await self._take_token(each.bucket, each.queue)
                waited = self._clock() - started
                gate.throttled.inc(waited)
            gate.in_flight.inc()
            try:
                yield waited
            finally:
                gate.in_flight.dec()
        finally:
            for slots in held:
                slots.release()

    async def _take_token(self, bucket: TokenBucket, queue: asyncio.Lock) -> None:
        """One waiter at a time asks the bucket (the lock is first come, first served), so
        a token's arrival wakes one request, not all of them."""
        async with queue:
            while wait := bucket.take(self._clock()):
                await self._sleep(wait)

    def _gate_of(self, trigger: Trigger) -> _TriggerGate:
        """The trigger's gate; a new one when its limits changed (a reloaded trigger)."""
        gate = self._triggers.get(trigger.id)
        if gate is not None and gate.trigger is trigger:
            return gate
        limits = Limits.of_trigger(trigger)
        if gate is None or gate.limits != limits:
            gate = _TriggerGate(limits, self._clock(), trigger)
            _publish_limits(trigger.id, limits)
        gate.trigger = trigger
        self._triggers[trigger.id] = gate
        return gate


def _publish_limits(trigger_id: str, limits: Limits) -> None:
    """The limits in force, as gauges; 0 means none."""
    rate = limits.calls_per_second
    metrics.FLOW_LIMIT.labels(trigger_id, "calls_per_second").set(rate or 0)
    metrics.FLOW_LIMIT.labels(trigger_id, "burst").set(limits.burst if rate else 0)
    metrics.FLOW_LIMIT.labels(trigger_id, "max_concurrency").set(limits.max_concurrency or 0)
