"""How late the event loop runs: the daemon's one thread matches, calls, serves the API and
keeps the Kafka session alive, so a long synchronous stretch delays all of them at once."""

from __future__ import annotations

import asyncio
import time

import structlog

from trigger_daemon.observability import metrics

log = structlog.get_logger(__name__)

SAMPLE_INTERVAL_SECONDS = 0.1
STALL_WARNING_SECONDS = 1.0  # about where fetch requests and heartbeats start timing out


async def watch_loop_lag(
    stop: asyncio.Event,
    interval_seconds: float = SAMPLE_INTERVAL_SECONDS,
    warn_after_seconds: float = STALL_WARNING_SECONDS,
) -> None:
    """Until `stop`: sleep `interval_seconds`, and record how much later than that it woke."""
    longest = 0.0
    while not stop.is_set():
        asked = time.monotonic()
        await asyncio.sleep(interval_seconds)
        lag = max(0.0, time.monotonic() - asked - interval_seconds)
        metrics.LOOP_LAG.observe(lag)
        if lag > longest:
            longest = lag
            metrics.LONGEST_LOOP_LAG.set(lag)
        if lag >= warn_after_seconds:
            log.warning("event_loop.stalled", seconds=round(lag, 3))
