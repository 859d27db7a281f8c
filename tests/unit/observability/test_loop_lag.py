"""The event loop watch: a synchronous stretch shows in the metrics and, when long, the log."""

import asyncio
import time

from structlog.testing import capture_logs

from trigger_daemon.observability import metrics
from trigger_daemon.observability.loop_lag import watch_loop_lag


async def test_a_blocked_loop_is_measured_and_a_long_stall_logged() -> None:
    stop = asyncio.Event()
    samples_before = metrics.LOOP_LAG.collect()[0].samples
    count_before = next(s.value for s in samples_before if s.name.endswith("_count"))
    with capture_logs() as logs:
        watch = asyncio.create_task(watch_loop_lag(stop, 0.01, warn_after_seconds=0.2))
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # noqa: ASYNC251  # the synchronous stretch under test
        await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(watch, 1)

    samples = metrics.LOOP_LAG.collect()[0].samples
    assert next(s.value for s in samples if s.name.endswith("_count")) > count_before
    assert metrics.LONGEST_LOOP_LAG.collect()[0].samples[0].value >= 0.25
    stalls = [entry for entry in logs if entry["event"] == "event_loop.stalled"]
    assert len(stalls) == 1
    assert stalls[0]["seconds"] >= 0.25
