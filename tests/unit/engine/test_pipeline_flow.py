"""The pipeline's loop over a list-backed source and a scripted handler: commits never lose
the last records, a full pipeline waits for room instead of pausing the consumer, and a
revoked partition is committed up to what it finished."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import pytest
from structlog.testing import capture_logs

from trigger_daemon.core.events import Envelope, Unprocessable
from trigger_daemon.engine.pipeline import Pipeline
from trigger_daemon.engine.records import ClaimedElsewhere, RecordHandler, TriagedRecord
from trigger_daemon.ports import SourceRecord
from trigger_daemon.testing import ListSource

PARTITION = ("ledger", 0)


def record(
    offset: int, key: bytes, value: bytes = b'{"type": "COMMITTED_TRANSACTIONS", "payload": {}}'
) -> SourceRecord:
    return SourceRecord(topic="ledger", partition=0, offset=offset, key=key, value=value)


class FakeHandler:
    """Finishes each record when its gate opens (at once when it has none); records whose
    value is in `no_work` need nothing, as events that match no trigger."""

    def __init__(
        self,
        gates: dict[int, asyncio.Event] | None = None,
        delay: float = 0,
        no_work: frozenset[bytes] = frozenset(),
    ) -> None:
        self._gates = gates or {}
        self._delay = delay
        self._no_work = no_work
        self.started = asyncio.Event()  # set once a record is being handled
        self.handled: list[int] = []
        self.triaged: list[int] = []
        self.on_triage: Callable[[SourceRecord], None] = lambda record: None

    def triage(
        self, record: SourceRecord, decoded: Envelope | Unprocessable
    ) -> TriagedRecord | None:
        self.triaged.append(record.offset)
        self.on_triage(record)
        return None if record.value in self._no_work else TriagedRecord(record, decoded)

    async def handle(self, work: TriagedRecord) -> None:
        record = work.record
        self.started.set()
        gate = self._gates.get(record.offset)
        if gate is not None:
            await gate.wait()
        await asyncio.sleep(self._delay)
        self.handled.append(record.offset)


class ClaimedElsewhereOnce(FakeHandler):
    """Finds the record's occurrence left pending by another replica on the first try."""

    tries = 0

    async def handle(self, work: TriagedRecord) -> None:
        self.tries += 1
        if self.tries == 1:
            raise ClaimedElsewhere("occurrence o-1 is still pending, claimed by r2, after 30 s")
        await super().handle(work)


async def test_a_record_claimed_elsewhere_is_handled_again_with_a_warning_not_an_error() -> None:
    source = ListSource([record(0, b"a")])
    handler = ClaimedElsewhereOnce()

    with capture_logs() as logs:
        await asyncio.wait_for(pipeline(source, handler).run(asyncio.Event(), until_idle=True), 5)

    assert (handler.tries, handler.handled) == (2, [0])
    assert source.commits[-1] == {PARTITION: 1}
    [line] = [line for line in logs if line["event"].startswith("record.")]
    assert line["event"] == "record.claimed_elsewhere_handled_again"
    assert line["log_level"] == "warning"
    assert "exc_info" not in line
    assert "claimed by r2" in line["reason"]


def pipeline(source: ListSource, handler: FakeHandler, **options: Any) -> Pipeline:
    return Pipeline(source, cast(RecordHandler, handler), **options)


async def test_a_record_finished_while_a_commit_is_on_its_way_is_committed_later() -> None:
    second_done = asyncio.Event()

    async def finish_the_second_record_meanwhile() -> None:
        second_done.set()
        for _ in range(5):  # let its worker run while this commit is "on the wire"
            await asyncio.sleep(0)

    source = ListSource(
        [record(0, b"a"), record(1, b"b")], on_commit=finish_the_second_record_meanwhile
    )
    handler = FakeHandler(gates={1: second_done})

    await asyncio.wait_for(pipeline(source, handler).run(asyncio.Event(), until_idle=True), 5)

    assert sorted(handler.handled) == [0, 1]
    assert source.commits[0] == {PARTITION: 1}
    assert source.commits[-1] == {PARTITION: 2}


async def test_a_full_pipeline_waits_for_room_instead_of_pausing_the_consumer() -> None:
    source = ListSource([record(offset, b"key-%d" % offset) for offset in range(8)])
    handler = FakeHandler(delay=0.01)

    flow = pipeline(source, handler, max_in_flight=2)
    await asyncio.wait_for(flow.run(asyncio.Event(), until_idle=True), 5)

    assert sorted(handler.handled) == list(range(8))
    assert source.fetches_while_paused == 0
    assert source.commits[-1] == {PARTITION: 8}


async def test_records_needing_no_work_finish_at_once_but_no_commit_passes_a_running_one() -> None:
    first_done = asyncio.Event()
    records = [record(0, b"a", value=b"work")] + [
        record(offset, b"b", value=b"nothing") for offset in range(1, 6)
    ]
    source = ListSource(records)
    handler = FakeHandler(gates={0: first_done}, no_work=frozenset({b"nothing"}))
    flow = asyncio.create_task(pipeline(source, handler).run(asyncio.Event(), until_idle=True))

    await asyncio.sleep(0.5)  # a few commit intervals while the first record runs
    commits_while_running = list(source.commits)
    first_done.set()
    await asyncio.wait_for(flow, 5)

    assert handler.handled == [0]  # the others never reached the handler
    # The five behind it finished at once, but nothing before the running one did: no commit.
    assert commits_while_running == []
    assert source.commits[-1] == {PARTITION: 6}


async def test_records_needing_no_work_alone_are_committed_to_the_end() -> None:
    source = ListSource([record(offset, b"k", value=b"nothing") for offset in range(4)])
    handler = FakeHandler(no_work=frozenset({b"nothing"}))

    await asyncio.wait_for(pipeline(source, handler).run(asyncio.Event(), until_idle=True), 5)

    assert handler.handled == []
    assert source.commits[-1] == {PARTITION: 4}


async def test_a_revoked_partition_commits_its_running_record_and_drops_the_queued_ones() -> None:
    first_done = asyncio.Event()
    source = ListSource([record(offset, b"one-key") for offset in range(3)])
    handler = FakeHandler(gates={0: first_done})
    stop = asyncio.Event()
    flow = asyncio.create_task(pipeline(source, handler).run(stop))
    await asyncio.wait_for(handler.started.wait(), 5)

    revoking = asyncio.create_task(source.revoke({PARTITION}))
    await asyncio.sleep(0.05)
    assert not revoking.done()  # it waits for the running record
    first_done.set()
    await asyncio.wait_for(revoking, 5)
    stop.set()
    await asyncio.wait_for(flow, 5)

    assert handler.handled == [0]  # the next owner reads 1 and 2 again
    assert source.committed == {PARTITION: 1}
    assert source.assigned() == set()


async def loop_turns_at_each_triage(
    source: ListSource, slice_seconds: float, busy_seconds: float = 0.0
) -> list[int]:
    """Run the pipeline over `source` (records that need no work) beside a task counting the
    loop's turns; the count each record's triage saw. Each triage keeps the loop for
    `busy_seconds`."""
    ticks = 0
    seen: list[int] = []

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    def triage(record: SourceRecord) -> None:
        seen.append(ticks)
        until = time.monotonic() + busy_seconds
        while time.monotonic() < until:
            pass

    handler = FakeHandler(no_work=frozenset({b"nothing"}))
    handler.on_triage = triage
    ticker = asyncio.create_task(tick())
    flow = pipeline(source, handler, triage_slice_seconds=slice_seconds)
    await asyncio.wait_for(flow.run(asyncio.Event(), until_idle=True), 5)
    ticker.cancel()
    await asyncio.gather(ticker, return_exceptions=True)
    return seen


@pytest.mark.parametrize(("slice_seconds", "yields_within_the_batch"), [(0.0, True), (60.0, False)])
async def test_a_large_batch_is_triaged_in_slices_that_let_the_loop_run(
    slice_seconds: float, yields_within_the_batch: bool
) -> None:
    source = ListSource([record(offset, b"k", value=b"nothing") for offset in range(50)])

    seen = await loop_turns_at_each_triage(source, slice_seconds)

    assert len(seen) == 50  # one batch of 50
    assert (len(set(seen)) > 40) is yields_within_the_batch
    assert source.commits[-1] == {PARTITION: 50}


async def test_small_batches_fetched_without_waiting_still_let_the_loop_run() -> None:
    """A fetch answered from the consumer's buffer does not yield: the slice spans fetches."""
    source = ListSource(
        [record(offset, b"k", value=b"nothing") for offset in range(50)], batch_size=2
    )

    seen = await loop_turns_at_each_triage(source, slice_seconds=0.005, busy_seconds=0.001)

    # 2 ms per batch, a 5 ms slice: about five records between two turns of the loop.
    assert len(seen) == 50
    longest_without_a_turn = max(Counter(seen).values())
    assert longest_without_a_turn <= 10
    assert source.commits[-1] == {PARTITION: 50}


async def test_a_partition_revoked_while_the_loop_yields_leaves_the_rest_to_its_next_owner() -> (
    None
):
    source = ListSource([record(offset, b"k", value=b"nothing") for offset in range(6)])
    handler = FakeHandler(no_work=frozenset({b"nothing"}))
    revoking: list[asyncio.Task[None]] = []

    def rebalance_after_the_second(record: SourceRecord) -> None:
        if record.offset == 1:  # runs at the loop's next yield, as a rebalance would
            revoking.append(asyncio.create_task(source.revoke({PARTITION})))

    handler.on_triage = rebalance_after_the_second
    stop = asyncio.Event()
    flow = asyncio.create_task(pipeline(source, handler, triage_slice_seconds=0.0).run(stop))
    await asyncio.wait_for(asyncio.sleep(0.1), 5)
    await asyncio.wait_for(revoking[0], 5)
    stop.set()
    await asyncio.wait_for(flow, 5)

    assert handler.triaged == [0, 1]  # 2 to 5 were never dispatched here
    assert source.committed == {PARTITION: 2}
    assert source.assigned() == set()
