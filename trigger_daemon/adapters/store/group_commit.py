"""Group commit: the writes of many concurrent callers in one transaction.

Hundreds of records are in flight at once and each wants two small writes (its occurrences,
then their outcomes). One transaction each costs a round trip per statement plus a commit,
and SQLite takes its single writer lock for every one of them, so the writes would queue
behind each other and bound the daemon's throughput. Here the first caller writes at once,
alone; callers arriving while that write runs wait and go together in the next one. Nobody
waits for a timer, and under load a transaction carries as many callers as arrived during
the previous one.

A write that fails fails for every caller in it, which is right for a database that is down.
A failure that retrying cannot mend may be one caller's bad data: the callers of that batch are
then written one by one, so only the culprit sees the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from trigger_daemon.errors import StoreError

Item = TypeVar("Item")
Result = TypeVar("Result")

Write = Callable[[list[Item]], Awaitable[list[Result]]]


class GroupCommit(Generic[Item, Result]):
    def __init__(self, write: Write[Item, Result], *, max_items: int = 512) -> None:
        """`write` takes a list of items and returns one result per item, in order, all in
        one transaction. A batch holds whole submissions, at most `max_items` items (one
        larger submission goes alone)."""
        self._write = write
        self._max_items = max_items
        self._waiting: list[tuple[Sequence[Item], asyncio.Future[list[Result]]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        """Write `items` with whatever else is waiting; their results, in order."""
        future: asyncio.Future[list[Result]] = asyncio.get_running_loop().create_future()
        self._waiting.append((items, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all(), name="group-commit")
        # A cancelled caller cancels only its own future: the batch runs in the writer task,
        # which skips futures already done.
        return await future

    async def close(self) -> None:
        """Wait for the writes already submitted."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                await self._write_batch(self._next_batch())
        finally:
            self._writer = None

    def _next_batch(self) -> list[tuple[Sequence[Item], asyncio.Future[list[Result]]]]:
        taken, count = 0, 0
        for items, _ in self._waiting:
            if taken and count + len(items) > self._max_items:
                break
            taken += 1
            count += len(items)
        batch, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return batch

    async def _write_batch(
        self, batch: list[tuple[Sequence[Item], asyncio.Future[list[Result]]]]
    ) -> None:
        try:
            results = await self._write([item for items, _ in batch for item in items])
        except Exception as exc:
            if len(batch) > 1 and not (isinstance(exc, StoreError) and exc.retriable):
                for submission in batch:
                    await self._write_batch([submission])
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled (the loop is closing): nobody waits forever
            for _, future in batch + self._waiting:
                future.cancel()
            raise
        start = 0
        for items, future in batch:
            if not future.done():
                future.set_result(results[start : start + len(items)])
            start += len(items)
