"""Rates over the last minute from the metric families, read in-process."""

from __future__ import annotations

import asyncio

from trigger_daemon.observability import metrics, rates
from trigger_daemon.observability.rates import RateWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rates_are_the_growth_since_the_oldest_sample_of_the_last_minute() -> None:
    clock = Clock()
    window = RateWindow(window_seconds=60, clock=clock)
    consumed = metrics.EVENTS_CONSUMED.labels("rates-test-topic")
    matched = metrics.EVENTS_MATCHED.labels("RATES_TEST_TYPE")

    clock.now += 10
    consumed.inc(100)
    matched.inc(10)
    first = window.rates()
    assert (first.events_per_second, first.matches_per_second, first.seconds) == (10.0, 1.0, 10)

    # Samples every 5 s for two minutes, 50 events each: the rate covers the last minute only.
    for _ in range(24):
        clock.now += 5
        consumed.inc(50)
        window.sample()
    later = window.rates()
    assert later.seconds == 60
    assert later.events_per_second == 10.0
    assert later.matches_per_second == 0.0


def test_gauges_sum_their_series_and_lag_is_unknown_without_partitions() -> None:
    metrics.IN_FLIGHT.set(7)
    assert rates.in_flight() == 7
    for labels in list(metrics.CONSUMER_LAG._metrics):  # other tests' partitions
        metrics.CONSUMER_LAG.remove(*labels)
    assert rates.consumer_lag() is None
    metrics.CONSUMER_LAG.labels("t", "0").set(5)
    metrics.CONSUMER_LAG.labels("t", "1").set(6)
    try:
        assert rates.consumer_lag() == 11
    finally:
        metrics.CONSUMER_LAG.remove("t", "0")
        metrics.CONSUMER_LAG.remove("t", "1")
        metrics.IN_FLIGHT.set(0)


async def test_watch_samples_until_stopped() -> None:
    clock = Clock()
    window = RateWindow(clock=clock)  # a sample at t=1000
    stop = asyncio.Event()
    watching = asyncio.create_task(window.watch(stop, every_seconds=0.01))
    clock.now += 30
    metrics.EVENTS_CONSUMED.labels("rates-watch-topic").inc(30)
    await asyncio.sleep(0.1)  # ten sampling periods: samples at t=1030 hold the 30 events
    stop.set()
    await asyncio.wait_for(watching, 1)
    clock.now += 61
    window.sample()  # the minute now starts after t=1030: the t=1000 sample is dropped
    assert window.rates().events_per_second == 0.0  # 30/91 had the watch not sampled
