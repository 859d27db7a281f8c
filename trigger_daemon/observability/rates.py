"""The daemon's recent activity, read in-process from its own metric families (metrics.py):
events and matches per second over the last minute, records in flight, consumer lag.

A `RateWindow` keeps a total of each counter every few seconds for a minute; a rate is the
growth since the oldest total it keeps. Reading a family walks its few series (one per topic
or event type), never the per-record path.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from trigger_daemon.observability import metrics

WINDOW_SECONDS = 60.0
SAMPLE_EVERY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Rates:
    events_per_second: float
    matches_per_second: float
    seconds: float  # how long the rates are measured over (under a minute after a start)


def counter_total(family: Counter) -> float:
    """The sum of the family's series."""
    return sum(
        sample.value
        for metric in family.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def gauge_sum(family: Gauge) -> float | None:
    """The sum of the family's series; None when it has none (no partition assigned yet)."""
    values = [sample.value for metric in family.collect() for sample in metric.samples]
    return sum(values) if values else None


def in_flight() -> int:
    return int(gauge_sum(metrics.IN_FLIGHT) or 0)


def consumer_lag() -> int | None:
    lag = gauge_sum(metrics.CONSUMER_LAG)
    return None if lag is None else int(lag)


class RateWindow:
    def __init__(
        self,
        window_seconds: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window_seconds
        self._clock = clock
        self._samples: deque[tuple[float, float, float]] = deque()  # (time, events, matches)
        self.sample()

    def sample(self) -> None:
        now = self._clock()
        self._samples.append(
            (now, counter_total(metrics.EVENTS_CONSUMED), counter_total(metrics.EVENTS_MATCHED))
        )
        # Keep one sample at least a window old: the base of a full minute's rate.
        while len(self._samples) > 1 and self._samples[1][0] <= now - self._window:
            self._samples.popleft()

    def rates(self) -> Rates:
        now = self._clock()
        since, events, matches = self._samples[0]
        seconds = now - since
        if seconds <= 0:
            return Rates(0.0, 0.0, 0.0)
        return Rates(
            events_per_second=(counter_total(metrics.EVENTS_CONSUMED) - events) / seconds,
            matches_per_second=(counter_total(metrics.EVENTS_MATCHED) - matches) / seconds,
            seconds=seconds,
        )

    async def watch(self, stop: asyncio.Event, every_seconds: float = SAMPLE_EVERY_SECONDS) -> None:
        """Sample every `every_seconds` until `stop` is set (a part of the running daemon)."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every_seconds)
            except TimeoutError:
                self.sample()
