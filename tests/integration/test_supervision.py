"""One supervisor over the daemon's long-running parts: when one dies, the daemon stops the
others gracefully and exits non-zero, and nothing is lost. The daemon runs as a real process
with a fault injected into its trigger refresh (faulty_daemon.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.processes import DaemonProcess
from trigger_daemon.devtools.stub_orchestration import StubOrchestration

from .conftest import committed_offset, produce_many, wait_until
from .faulty_daemon import INJECTED
from .test_faults import PARTITIONS, calls_per_key, config, transactions, until_all_succeeded
from .test_faults import stream_topic as stream_topic  # the fixture

pytestmark = pytest.mark.slow

FAULTY_DAEMON = (sys.executable, str(Path(__file__).with_name("faulty_daemon.py")))
GRACE_SECONDS = 10


async def test_a_dying_trigger_refresh_stops_the_daemon_gracefully_and_loses_nothing(
    broker: TansuBroker, stub: StubOrchestration, stream_topic: str, tmp_path: Path
) -> None:
    count = 1200
    stub.delay_seconds = 0.01
    settings = config(
        broker,
        stub,
        stream_topic,
        tmp_path,
        store={"url": f"sqlite:///{tmp_path}/store.db", "poll_interval_seconds": 0.1},
        shutdown_grace_seconds=GRACE_SECONDS,
    )
    flag = tmp_path / "fail-now"
    faulty = DaemonProcess(tmp_path, settings, "faulty", command=(*FAULTY_DAEMON, str(flag)))
    second = DaemonProcess(tmp_path, settings, "second")
    try:
        faulty.start()
        await faulty.wait_ready()
        await produce_many(broker.bootstrap_servers, stream_topic, transactions(count))
        await wait_until(lambda: len(stub.calls) >= count // 4, what="a quarter of the calls")
        flag.touch()
        started = time.monotonic()
        exit_status = await faulty.wait_exit(within_seconds=GRACE_SECONDS + 10)
        stopping_took = time.monotonic() - started
        calls_at_exit = len(stub.calls)

        failed = faulty.events("daemon.part_failed")
        assert [line["part"] for line in failed] == ["trigger refresh"], faulty.tail()
        assert INJECTED in failed[0]["error"]
        assert not faulty.events("daemon.grace_period_over")  # in-flight work finished
        # What the stopping daemon handled is committed: nothing it finished is read again.
        committed = sum(
            [
                await committed_offset(
                    broker.bootstrap_servers, settings["kafka"]["group_id"], stream_topic, p
                )
                for p in range(PARTITIONS)
            ]
        )

        second.start()
        await until_all_succeeded(tmp_path, count)
    finally:
        faulty.stop_quietly()
        second.stop_quietly()

    assert exit_status == 1, faulty.tail()
    assert stopping_took < GRACE_SECONDS
    assert calls_at_exit < count, "the fault must strike mid-stream for this test to mean much"
    assert committed == calls_at_exit  # everything handled was committed, nothing skipped
    per_key = calls_per_key(stub)
    assert len(per_key) == count  # nothing lost
    assert max(per_key.values()) == 1  # and nothing the first daemon ran was run again
