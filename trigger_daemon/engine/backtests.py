"""Backtests: running a trigger over the records already in Kafka, counting what it would do.

`Backtests` starts them in the background (the API), at most `max_running` at once, or runs
one in the foreground (the `backtest` command). A run reads its window through `ports.History`
(its own consumer, outside the consumer group), counts each record with
`core.backtests.BacktestTally` (the live pipeline's decode, identity, match and render code),
and asks the store in batches which matched events already have an occurrence of the trigger.
It calls no workflow, writes no occurrence and publishes nothing.

A run gives the event loop back every `YIELD_EVERY` records and, while the live pipeline has
work, keeps to a quarter of the loop (`engine.background`), so live events keep most of their
pace (bench/backtest_beside_live.py measures it). Running backtests live in
this process only: a restart forgets them. Finished ones are saved in the store, where any
replica finds them, and removed `keep_finished` after they finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import structlog

from trigger_daemon.core.backtests import (
    Backtest,
    BacktestRefused,
    BacktestRequest,
    BacktestStatus,
    BacktestTally,
    TooManyBacktests,
)
from trigger_daemon.core.windows import Window
from trigger_daemon.engine.background import BackgroundShare
from trigger_daemon.errors import ExternalError
from trigger_daemon.ports import BacktestStore, History, SourceRecord

log = structlog.get_logger(__name__)

YIELD_EVERY = 16  # records evaluated between two turns given back to the event loop
OCCURRED_BATCH = 400  # matched event ids asked about in one store read
MAX_LISTED = 100

Progress = Callable[[Backtest], None]


@dataclass(slots=True)
class _Run:
    backtest: Backtest  # as started; the tally holds the counts
    request: BacktestRequest
    tally: BacktestTally
    share: BackgroundShare = field(default_factory=BackgroundShare)
    task: asyncio.Task[Backtest] | None = None
    cancel_requested: bool = False
    pending_ids: list[str] = field(default_factory=list)
    ended: Backtest | None = None  # once finished, while it is being saved

    def snapshot(self) -> Backtest:
        return self.ended or self.tally.snapshot(self.backtest)


class Backtests:
    def __init__(
        self,
        history: History,
        store: BacktestStore,
        *,
        max_running: int = 2,
        keep_finished: timedelta = timedelta(hours=24),
    ) -> None:
        self._history = history
        self._store = store
        self._max_running = max_running
        self._keep_finished = keep_finished
        self._running: dict[str, _Run] = {}

    async def start(self, request: BacktestRequest) -> Backtest:
        """Check the request and start it in the background; answers it as started.
        TooManyBacktests when `max_running` are running, BacktestRefused for a bad request."""
        self._refuse_when_full()
        await self._check(request)
        self._refuse_when_full()  # others may have started while the topics were checked
        run = self._new_run(request)
        self._running[run.backtest.id] = run
        run.task = asyncio.create_task(self._run_and_save(run), name=f"backtest {run.backtest.id}")
        # Here, not in the task: a task cancelled before its first step runs none of its code.
        run.task.add_done_callback(lambda _: self._running.pop(run.backtest.id, None))
        log.info("backtest.started", backtest_id=run.backtest.id, trigger_id=request.trigger_id)
        return run.snapshot()

    async def run(self, request: BacktestRequest, progress: Progress | None = None) -> Backtest:
        """Run one to its end here (the `backtest` command), reporting after each chunk read;
        nothing is saved."""
        await self._check(request)
        return await self._execute(self._new_run(request), progress)

    async def get(self, backtest_id: str) -> Backtest:
        run = self._running.get(backtest_id)
        return run.snapshot() if run is not None else await self._store.get_backtest(backtest_id)

    async def recent(self, limit: int = MAX_LISTED) -> list[Backtest]:
        """Running ones (of this replica) and finished ones (of every replica), newest first."""
        running = [run.snapshot() for run in self._running.values()]
        finished = await self._store.list_backtests(limit=limit)
        known = {backtest.id for backtest in running}
        every = running + [backtest for backtest in finished if backtest.id not in known]
        return sorted(every, key=lambda backtest: backtest.started_at, reverse=True)[:limit]

    async def cancel(self, backtest_id: str) -> Backtest:
        """Stop a running one and answer it as it ended (`cancelled`); a finished one is
        answered as it is."""
        run = self._running.get(backtest_id)
        if run is None or run.task is None:
            return await self._store.get_backtest(backtest_id)
        run.cancel_requested = True
        run.task.cancel()
        try:
            return await asyncio.shield(run.task)
        except asyncio.CancelledError:
            if not run.task.cancelled():
                raise  # this call itself was cancelled
        # Cancelled before it read anything.
        ended = replace(
            run.snapshot(), status=BacktestStatus.CANCELLED, finished_at=datetime.now(UTC)
        )
        await self._store.save_backtest(ended)
        return ended

    async def close(self) -> None:
        """Stop every running backtest without saving it (a restart forgets them)."""
        tasks = [run.task for run in self._running.values() if run.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _refuse_when_full(self) -> None:
        if len(self._running) >= self._max_running:
            raise TooManyBacktests(
                f"{len(self._running)} backtests are running, the most allowed "
                f"(backtest.max_running); try again when one has finished, or cancel one"
            )

    async def _check(self, request: BacktestRequest) -> None:
        if request.since >= request.until:
            raise BacktestRefused("since: must be earlier than until")
        missing = await self._history.missing_topics(request.topics)
        if missing:
            raise BacktestRefused(f"topics: no such topic: {', '.join(missing)}")

    def _new_run(self, request: BacktestRequest) -> _Run:
        backtest = Backtest(
            id=str(uuid.uuid4()),
            status=BacktestStatus.RUNNING,
            trigger_id=request.trigger_id,
            since=request.since,
            until=request.until,
            topics=request.topics,
            started_at=datetime.now(UTC),
        )
        return _Run(backtest, request, BacktestTally(request.compiled, request.samples))

    async def _run_and_save(self, run: _Run) -> Backtest:
        finished = run.ended = await self._execute(run)
        try:
            await self._store.save_backtest(finished)
            await self._store.expire_backtests(datetime.now(UTC) - self._keep_finished)
        except ExternalError as exc:
            log.warning("backtest.save_failed", backtest_id=finished.id, error=str(exc))
        finally:
            self._running.pop(run.backtest.id, None)
        log.info(
            "backtest.finished",
            backtest_id=finished.id,
            status=finished.status.value,
            scanned=finished.scanned,
            matched=finished.matched,
        )
        return finished

    async def _execute(self, run: _Run, progress: Progress | None = None) -> Backtest:
        """Read and count the window; the backtest as it ended. A cancellation asked for by
        `cancel` ends it `cancelled`; any other is passed on."""
        status, error = BacktestStatus.SUCCEEDED, None
        request = run.request
        window = Window.of(request.since, request.until)
        try:
            chunks = self._history.read(request.topics, window)
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    run.tally.read += chunk.read
                    run.tally.total = chunk.total
                    await self._count(run, chunk.records)
                    if progress is not None:
                        progress(run.snapshot())
            await self._count_already_occurred(run)
        except asyncio.CancelledError:
            if not run.cancel_requested:
                raise
            status = BacktestStatus.CANCELLED
        except ExternalError as exc:
            status, error = BacktestStatus.FAILED, str(exc)
        return replace(run.snapshot(), status=status, error=error, finished_at=datetime.now(UTC))

    async def _count(self, run: _Run, records: Sequence[SourceRecord]) -> None:
        tally, trigger_id = run.tally, run.request.trigger_id
        for position, record in enumerate(records, 1):
            identity = tally.count(record)
            if identity is not None and trigger_id is not None:
                run.pending_ids.append(identity)
            if position % YIELD_EVERY == 0:
                await run.share.pause()
        await run.share.pause()
        if len(run.pending_ids) >= OCCURRED_BATCH:
            await self._count_already_occurred(run)

    async def _count_already_occurred(self, run: _Run) -> None:
        """Ask the store about the matched events kept so far (an unsaved trigger has none)."""
        trigger_id, asked = run.request.trigger_id, run.pending_ids
        if trigger_id is None or not asked:
            return
        run.pending_ids = []
        occurred = await self._store.occurred_event_ids(trigger_id, sorted(set(asked)))
        run.tally.already_occurred += sum(1 for event_id in asked if event_id in occurred)
