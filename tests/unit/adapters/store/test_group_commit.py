"""Group commit: who shares a write, what each caller gets back, and how failures spread."""

from __future__ import annotations

import asyncio

import pytest

from trigger_daemon.adapters.store.group_commit import GroupCommit
from trigger_daemon.errors import StoreError


class RecordingWrite:
    """A write that records its batches; it waits on `release` so callers can pile up."""

    def __init__(self, fail_on: set[int] | None = None, error: Exception | None = None) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.started = asyncio.Event()
        self._fail_on = fail_on or set()
        self._error = error

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        self.started.set()
        await self.release.wait()
        if self._fail_on & set(items):
            raise self._error or ValueError("bad item")
        return [item * 10 for item in items]


async def started(write: RecordingWrite) -> None:
    await write.started.wait()


async def test_a_lone_caller_writes_at_once_and_gets_its_results() -> None:
    write = RecordingWrite()
    group = GroupCommit(write)

    assert await group.submit([1, 2]) == [10, 20]
    assert write.batches == [[1, 2]]


async def test_callers_arriving_during_a_write_share_the_next_one() -> None:
    write = RecordingWrite()
    write.release.clear()
    group = GroupCommit(write)
    first = asyncio.create_task(group.submit([1]))
    await started(write)  # the first write has started and is held
    others = [asyncio.create_task(group.submit([n, n + 100])) for n in range(2, 6)]
    await asyncio.sleep(0)
    write.release.set()

    assert await first == [10]
    assert [await task for task in others] == [[n * 10, (n + 100) * 10] for n in range(2, 6)]
    assert write.batches == [[1], [2, 102, 3, 103, 4, 104, 5, 105]]


async def test_a_batch_holds_whole_submissions_up_to_the_limit() -> None:
    write = RecordingWrite()
    write.release.clear()
    group = GroupCommit(write, max_items=4)
    tasks = [asyncio.create_task(group.submit([n, n])) for n in range(5)]
    await asyncio.sleep(0)
    write.release.set()
    await asyncio.gather(*tasks)

    assert write.batches == [[0, 0, 1, 1], [2, 2, 3, 3], [4, 4]]


async def test_a_retriable_failure_fails_every_caller_of_the_batch() -> None:
    write = RecordingWrite(fail_on={3}, error=StoreError("database down", retriable=True))
    write.release.clear()
    group = GroupCommit(write)
    first = asyncio.create_task(group.submit([1]))
    await started(write)
    batch = [asyncio.create_task(group.submit([n])) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    write.release.set()

    assert await first == [10]
    results = await asyncio.gather(*batch, return_exceptions=True)
    assert all(isinstance(result, StoreError) for result in results)
    assert write.batches == [[1], [2, 3, 4]]  # not retried one by one


async def test_any_other_failure_is_narrowed_to_the_caller_that_caused_it() -> None:
    write = RecordingWrite(fail_on={3})
    write.release.clear()
    group = GroupCommit(write)
    first = asyncio.create_task(group.submit([1]))
    await started(write)
    batch = [asyncio.create_task(group.submit([n])) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    write.release.set()
    await first

    two, three, four = await asyncio.gather(*batch, return_exceptions=True)
    assert (two, four) == ([20], [40])
    assert isinstance(three, ValueError)
    assert write.batches == [[1], [2, 3, 4], [2], [3], [4]]


async def test_a_cancelled_caller_leaves_the_shared_write_to_finish_for_the_others() -> None:
    write = RecordingWrite()
    write.release.clear()
    group = GroupCommit(write)
    leaving = asyncio.create_task(group.submit([1]))
    staying = asyncio.create_task(group.submit([2]))
    await asyncio.sleep(0)
    leaving.cancel()
    write.release.set()

    assert await staying == [20]
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert write.batches == [[1, 2]]
    await group.close()
