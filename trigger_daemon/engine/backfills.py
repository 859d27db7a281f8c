"""Backfills: starting them (the API), and running them (a supervised part of the daemon).

A backfill is a row in the store from the moment it is asked for; nothing about it lives only
in a process. `Backfills` is what the API asks (start, read, list, cancel); `BackfillRunner.run`
is the daemon's part that runs them: it claims running backfills whose lease is free
(`BackfillStore.claim_backfill`), at most `max_running` at once, and runs each
(`backfill_run`) while renewing its lease every `lease / 3`. So:

- One replica at a time runs a backfill: the one holding its lease. A replica that dies stops
  renewing; another claims it once the lease has expired (within `lease` plus one claim poll),
  and resumes it from its saved positions.
- A replica's name is its host name and API port (no two live processes share both), so a
  daemon restarted on the same host and port takes its own backfills back at once, without
  waiting for the lease.
- A stop (SIGTERM) lets the records in hand finish, saves the positions and releases the
  lease, so another replica (or the restarted daemon) goes on at once. A stop that outlasts
  the grace period abandons the records in hand: they are read again on resume.
- Cancelling marks the row cancelled; its holder sees it at its next renewal and stops.
- A replica whose save or renewal finds the lease gone (it was paused past the lease, and
  another took over) stops at once; what both ran meanwhile is deduplicated by the
  occurrences, as after a partition move.

Lease times are each replica's own clock: replicas' clocks should agree within a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial

import structlog

from trigger_daemon.core.backfills import (
    Backfill,
    BackfillRefused,
    BackfillRequest,
    BackfillStatus,
    BackfillTally,
    Counts,
    Positions,
)
from trigger_daemon.core.expressions import Expression
from trigger_daemon.core.triggers import CompiledTrigger, compile_trigger
from trigger_daemon.core.windows import Window
from trigger_daemon.engine.backfill_run import BackfillRecords, HistorySource, closing
from trigger_daemon.engine.pipeline import Pipeline
from trigger_daemon.engine.records import RecordHandler
from trigger_daemon.errors import NotFoundError, StoreError
from trigger_daemon.ports import BackfillStore, History, Store
from trigger_daemon.triggers.catalog import TriggerCatalog

log = structlog.get_logger(__name__)

MAX_LISTED = 100
CLAIM_POLL_SECONDS = 1.0
_RELEASE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class BackfillLimits:
    max_running: int = 2
    lease: timedelta = timedelta(seconds=15)
    max_in_flight: int = 256  # a backfill's records in hand, as `pipeline.max_in_flight`


@dataclass(slots=True)
class _Running:
    backfill: Backfill
    tally: BackfillTally
    halt: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False  # halted by the daemon's stop, not by a cancel or a lost lease
    task: asyncio.Task[None] | None = None


class BackfillRunner:
    """The daemon's part that claims and runs backfills (module docstring)."""

    def __init__(
        self,
        store: BackfillStore,
        history: History,
        limits: BackfillLimits,
        *,
        catalog: TriggerCatalog,
        trigger_store: Store,
        records: RecordHandler,
        must_pause: Callable[[], bool],
        ordering_key: Expression | None = None,
        claim_poll_seconds: float = CLAIM_POLL_SECONDS,
    ) -> None:
        self._store = store
        self._history = history
        self._limits = limits
        # This replica's name in the leases; set before `run` (the daemon names it once its
        # API listens).
        self.owner = ""
        self._catalog = catalog
        self._trigger_store = trigger_store
        self._records = records
        self._must_pause = must_pause
        self._ordering_key = ordering_key
        self._claim_poll = claim_poll_seconds
        self._running: dict[str, _Running] = {}
        self._wake = asyncio.Event()
        self._endings: set[asyncio.Future[None]] = set()

    def wake(self) -> None:
        """Claim soon: a backfill was just created."""
        self._wake.set()

    def halt(self, backfill_id: str) -> None:
        """Stop running it here (it was cancelled)."""
        running = self._running.get(backfill_id)
        if running is not None:
            running.halt.set()

    def current(self, backfill_id: str) -> Counts | None:
        """The counts of the moment of one running here."""
        running = self._running.get(backfill_id)
        return None if running is None else running.tally.current()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run backfills until `stop`; then let each stop as the module says."""
        if not self.owner:
            raise ValueError("BackfillRunner.owner must name this replica before it runs")
        try:
            while not stop.is_set():
                await self._claim(stop)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_either(stop, self._wake), self._claim_poll)
            for each in self._running.values():
                each.stopping = True
                each.halt.set()
            await asyncio.gather(*self._tasks(), return_exceptions=True)
        finally:
            tasks = self._tasks()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._endings:  # leases being released by cancelled runs
                await asyncio.wait(self._endings, timeout=_RELEASE_TIMEOUT_SECONDS)

    def _tasks(self) -> list[asyncio.Task[None]]:
        return [r.task for r in self._running.values() if r.task is not None]

    async def _claim(self, stop: asyncio.Event) -> None:
        running = self._running
        while len(running) < self._limits.max_running and not stop.is_set():
            now = datetime.now(UTC)
            try:
                claimed = await self._store.claim_backfill(
                    self.owner, now, now + self._limits.lease, sorted(running)
                )
            except StoreError as exc:
                log.warning("backfill.claim_failed", error=str(exc))
                return
            if claimed is None:
                return
            backfill, positions = claimed
            entry = _Running(backfill, BackfillTally(backfill.counts))
            running[backfill.id] = entry
            entry.task = asyncio.create_task(
                self._run_one(entry, positions), name=f"backfill {backfill.id}"
            )
            entry.task.add_done_callback(partial(_forget, running, backfill.id))

    async def _run_one(self, entry: _Running, positions: Positions) -> None:
        backfill = entry.backfill
        log.info(
            "backfill.claimed",
            backfill_id=backfill.id,
            trigger_id=backfill.trigger_id,
            owner=self.owner,
            positions=_shown(positions),
        )
        window = Window.of(backfill.since, backfill.until)
        source = HistorySource(
            self._history,
            backfill.topics,
            window,
            positions,
            entry.tally,
            lambda at, counts: self._store.save_backfill_progress(
                replace(backfill, counts=counts), at, self.owner
            ),
        )
        renewing = asyncio.create_task(self._renew(entry), name=f"backfill lease {backfill.id}")
        end: tuple[BackfillStatus, str | None] | None = None
        try:
            compiled = await self._compiled(backfill.trigger_id)
            async with closing(source):
                await self._pipeline(entry, source, compiled)
            if source.exhausted and not entry.halt.is_set():
                end = (BackfillStatus.SUCCEEDED, None)
            elif not entry.stopping:  # cancelled, or the lease was lost
                end = (BackfillStatus.CANCELLED, None)
        except NotFoundError:
            end = (BackfillStatus.FAILED, f"trigger {backfill.trigger_id} no longer exists")
        except StoreError as exc:  # reading the trigger: released, and claimed again later
            log.warning("backfill.start_failed", backfill_id=backfill.id, error=str(exc))
        except Exception as exc:
            log.exception("backfill.crashed", backfill_id=backfill.id)
            end = (BackfillStatus.FAILED, f"{type(exc).__name__}: {exc}")
        finally:
            renewing.cancel()
            # Shielded: a stop past the grace period still saves and releases the lease.
            ending = asyncio.ensure_future(self._end(entry, source.positions, end))
            self._endings.add(ending)
            ending.add_done_callback(self._endings.discard)
            await asyncio.shield(ending)

    async def _pipeline(
        self, entry: _Running, source: HistorySource, compiled: CompiledTrigger
    ) -> None:
        pipeline = Pipeline(
            source,
            BackfillRecords(compiled, self._records, entry.tally),
            max_in_flight=self._limits.max_in_flight,
            must_pause=self._must_pause,
            ordering_key=self._ordering_key,
            metered=False,
        )
        watching = asyncio.create_task(_relay(source.lost, entry.halt))
        try:
            await pipeline.run(entry.halt, until_idle=True)
        finally:
            watching.cancel()

    async def _end(
        self,
        entry: _Running,
        positions: Positions,
        end: tuple[BackfillStatus, str | None] | None,
    ) -> None:
        """Finish it (`end`), or save where it got and let its lease go (a stop)."""
        backfill = replace(entry.backfill, counts=entry.tally.durable)
        context = {"backfill_id": backfill.id, "trigger_id": backfill.trigger_id}
        try:
            if end is None:
                saved = await self._store.save_backfill_progress(
                    backfill, positions, self.owner, release=True
                )
                log.info("backfill.released", saved=saved, positions=_shown(positions), **context)
                return
            status, error = end
            ended = replace(backfill, status=status, error=error, finished_at=datetime.now(UTC))
            stored = await self._store.finish_backfill(ended, positions, self.owner)
        except StoreError as exc:
            # Still running in the store: claimed again (by this replica at once), it ends then.
            log.warning("backfill.save_failed", error=str(exc), **context)
            return
        if stored is None:
            log.info("backfill.lost", detail="another replica holds its lease", **context)
            return
        log.info(
            "backfill.finished",
            status=str(stored.status),
            error=stored.error,
            **stored.counts.document(),
            **context,
        )

    async def _renew(self, entry: _Running) -> None:
        interval = self._limits.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            expires_at = datetime.now(UTC) + self._limits.lease
            try:
                held = await self._store.renew_backfill_lease(
                    entry.backfill.id, self.owner, expires_at
                )
            except StoreError as exc:
                log.warning("backfill.renew_failed", backfill_id=entry.backfill.id, error=str(exc))
                continue
            if not held:  # cancelled, or taken over after this replica was paused too long
                log.info("backfill.lease_ended", backfill_id=entry.backfill.id)
                entry.halt.set()
                return

    async def _compiled(self, trigger_id: str) -> CompiledTrigger:
        compiled = self._catalog.compiled(trigger_id)
        if compiled is None:  # not active here yet (created through another replica)
            compiled = compile_trigger(await self._trigger_store.get_trigger(trigger_id))
        return compiled


class Backfills:
    """What the API asks: start, read, list, cancel."""

    def __init__(
        self,
        store: BackfillStore,
        history: History,
        limits: BackfillLimits,
        runner: BackfillRunner | None = None,
    ) -> None:
        """`runner`: this replica's, when it runs backfills (it is woken and asked for the
        counts of the moment); without one, backfills wait for a replica that runs them."""
        self._store = store
        self._history = history
        self._limits = limits
        self._runner = runner

    async def start(self, request: BackfillRequest) -> Backfill:
        """Store it as running and wake the runner; TooManyBackfills when `max_running` run
        (on all replicas), BackfillRefused for a bad request."""
        if request.since >= request.until:
            raise BackfillRefused("since: must be earlier than until")
        missing = await self._history.missing_topics(request.topics)
        if missing:
            raise BackfillRefused(f"topics: no such topic: {', '.join(missing)}")
        backfill = Backfill(
            id=str(uuid.uuid4()),
            trigger_id=request.trigger_id,
            status=BackfillStatus.RUNNING,
            since=request.since,
            until=request.until,
            topics=request.topics,
            started_at=datetime.now(UTC),
        )
        await self._store.create_backfill(backfill, max_running=self._limits.max_running)
        if self._runner is not None:
            self._runner.wake()
        log.info("backfill.created", backfill_id=backfill.id, trigger_id=backfill.trigger_id)
        return backfill

    async def get(self, backfill_id: str) -> Backfill:
        return self._live(await self._store.get_backfill(backfill_id))

    async def recent(self, limit: int = MAX_LISTED) -> list[Backfill]:
        return [self._live(b) for b in await self._store.list_backfills(limit=limit)]

    async def cancel(self, backfill_id: str) -> Backfill:
        """Mark it cancelled; answered at once, as stored. Its holder stops at its next lease
        renewal (at once when it is this replica)."""
        cancelled = await self._store.cancel_backfill(backfill_id, datetime.now(UTC))
        if self._runner is not None:
            self._runner.halt(backfill_id)
        return cancelled

    def _live(self, stored: Backfill) -> Backfill:
        """One this replica runs, with its counts of the moment (the store has them as of
        the last save, at most a second old)."""
        counts = None if self._runner is None else self._runner.current(stored.id)
        return stored if counts is None or not stored.is_running else replace(stored, counts=counts)


def _forget(running: dict[str, _Running], backfill_id: str, _: object) -> None:
    running.pop(backfill_id, None)


async def _either(first: asyncio.Event, second: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


def _shown(positions: Positions) -> Sequence[str]:
    return [
        f"{topic}/{partition}@{offset}" for (topic, partition), offset in sorted(positions.items())
    ]
