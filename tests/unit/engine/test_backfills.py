"""Backfills over the fakes: the live occurrence path for one trigger, skip what occurred,
stop and resume from the saved position under another replica, cancel, refusals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from trigger_daemon.core.backfills import (
    Backfill,
    BackfillRefused,
    BackfillRequest,
    BackfillStatus,
    TooManyBackfills,
)
from trigger_daemon.core.windows import epoch_ms
from trigger_daemon.engine.backfills import BackfillLimits, BackfillRunner, Backfills
from trigger_daemon.engine.records import RecordHandler
from trigger_daemon.ports import SourceRecord
from trigger_daemon.testing import (
    InMemoryStore,
    ListHistory,
    RecordingDeadLetters,
    ScriptedWorkflowApi,
)
from trigger_daemon.triggers.catalog import TriggerCatalog

from .builders import SETTLE, catalog_with, payment, runner_for

SINCE = datetime(2024, 5, 1, tzinfo=UTC)
LIMITS = BackfillLimits(max_running=2, lease=timedelta(seconds=3), max_in_flight=8)
KEYS = 3


def history(count: int) -> list[SourceRecord]:
    """A record a second from SINCE, on KEYS keys; every fourth payment failed (no match)."""
    return [
        SourceRecord(
            "payments",
            0,
            n,
            f"k{n % KEYS}".encode(),
            json.dumps(
                payment(f"p-{n}", "FAILED" if n % 4 == 3 else "SUCCEEDED", idempotency_key=f"{n}")
            ).encode(),
            (),
            epoch_ms(SINCE) + 1000 * n,
        )
        for n in range(count)
    ]


class Replica:
    """One replica's backfill side over a shared store, history and API."""

    def __init__(
        self, name: str, store: InMemoryStore, history: ListHistory, api: ScriptedWorkflowApi
    ) -> None:
        self.catalog = TriggerCatalog(store)
        records = RecordHandler(self.catalog, store, runner_for(store, api), RecordingDeadLetters())
        self.runner = BackfillRunner(
            store,
            history,
            LIMITS,
            catalog=self.catalog,
            trigger_store=store,
            records=records,
            must_pause=lambda: False,
            claim_poll_seconds=0.01,
        )
        self.runner.owner = name
        self.backfills = Backfills(store, history, LIMITS, self.runner)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[asyncio.Event]:
        await self.catalog.refresh()
        stop = asyncio.Event()
        task = asyncio.create_task(self.runner.run(stop))
        try:
            yield stop
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)


async def until_finished(replica: Replica, backfill_id: str) -> Backfill:
    for _ in range(500):
        found = await replica.backfills.get(backfill_id)
        if not found.is_running:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"backfill {backfill_id} did not finish")


def window(trigger_id: str, seconds: int) -> BackfillRequest:
    return BackfillRequest(trigger_id, SINCE, SINCE + timedelta(seconds=seconds), ("payments",))


def payments_called(api: ScriptedWorkflowApi) -> list[int]:
    return [int(request.variables["payment"].removeprefix("p-")) for request in api.requests]


async def fixture(count: int) -> tuple[InMemoryStore, ListHistory, ScriptedWorkflowApi, str]:
    store = InMemoryStore()
    await catalog_with(store, SETTLE)
    [trigger] = await store.list_triggers()
    history_ = ListHistory({"payments": history(count)}, chunk_size=7)
    return store, history_, ScriptedWorkflowApi(), trigger.id


async def test_the_matches_of_the_window_run_once_in_key_order_and_a_second_run_skips_them() -> (
    None
):
    store, records, api, trigger_id = await fixture(40)
    replica = Replica("a:1", store, records, api)
    async with replica.running():
        first = await replica.backfills.start(window(trigger_id, 30))
        done = await until_finished(replica, first.id)
        again = await until_finished(
            replica, (await replica.backfills.start(window(trigger_id, 30))).id
        )

    expected = [n for n in range(30) if n % 4 != 3]
    assert sorted(payments_called(api)) == expected
    for key in range(KEYS):
        of_key = [n for n in payments_called(api) if n % KEYS == key]
        assert of_key == sorted(of_key)
    assert done.status is BackfillStatus.SUCCEEDED
    matched = len(expected)
    assert (done.counts.scanned, done.counts.matched, done.counts.ran) == (30, matched, matched)
    assert (again.counts.ran, again.counts.skipped, len(api.requests)) == (0, matched, matched)
    keys = {o.event_id for o in store.occurrences.values()}
    assert keys == {f"SAVED_PAYMENT:{n}" for n in expected}


async def test_a_stopped_replica_saves_its_position_and_another_resumes_from_it() -> None:
    store, records, api, trigger_id = await fixture(60)
    first, second = Replica("a:1", store, records, api), Replica("b:1", store, records, api)
    async with first.running() as stop:
        started = await first.backfills.start(window(trigger_id, 60))
        for _ in range(1000):  # until a third of it ran
            if len(api.requests) >= 20:
                break
            await asyncio.sleep(0.001)
        records.flowing.clear()  # the next chunk never comes: it is stopped midway
        stop.set()
    paused = await store.get_backfill(started.id)
    saved_positions = store.backfills[started.id].positions
    records.flowing.set()
    async with second.running():
        done = await until_finished(second, started.id)

    assert paused.status is BackfillStatus.RUNNING
    assert paused.owner is None  # released: anyone may take it at once
    assert 0 < saved_positions[("payments", 0)] < 60
    assert done.status is BackfillStatus.SUCCEEDED
    called = payments_called(api)
    assert sorted(called) == [n for n in range(60) if n % 4 != 3]  # none twice, none lost
    assert done.counts.scanned == 60
    assert done.counts.ran + done.counts.skipped == done.counts.matched == 45


async def test_cancel_stops_it_and_it_stays_cancelled() -> None:
    store, records, api, trigger_id = await fixture(30)
    replica = Replica("a:1", store, records, api)
    async with replica.running():
        records.flowing.clear()
        started = await replica.backfills.start(window(trigger_id, 30))
        cancelled = await replica.backfills.cancel(started.id)
        records.flowing.set()
        ended = await until_finished(replica, started.id)
        await asyncio.sleep(0.05)  # its holder has let it go
    assert cancelled.status is BackfillStatus.CANCELLED
    assert (await store.get_backfill(started.id)).status is BackfillStatus.CANCELLED
    assert ended.finished_at is not None
    assert store.backfills[started.id].owner is None


async def test_a_deleted_trigger_fails_the_backfill() -> None:
    store, records, api, trigger_id = await fixture(5)
    replica = Replica("a:1", store, records, api)
    started = await replica.backfills.start(window(trigger_id, 5))
    await store.delete_trigger(trigger_id)
    async with replica.running():
        ended = await until_finished(replica, started.id)
    assert ended.status is BackfillStatus.FAILED
    assert ended.error == f"trigger {trigger_id} no longer exists"
    assert api.requests == []


async def test_bad_windows_unknown_topics_and_too_many_are_refused() -> None:
    store, records, api, trigger_id = await fixture(5)
    backfills = Replica("a:1", store, records, api).backfills
    with pytest.raises(BackfillRefused, match="earlier"):
        await backfills.start(BackfillRequest(trigger_id, SINCE, SINCE, ("payments",)))
    with pytest.raises(BackfillRefused, match="no such topic: nope"):
        await backfills.start(
            BackfillRequest(trigger_id, SINCE, SINCE + timedelta(1), ("payments", "nope"))
        )
    await backfills.start(window(trigger_id, 5))
    await backfills.start(window(trigger_id, 5))
    with pytest.raises(TooManyBackfills):
        await backfills.start(window(trigger_id, 5))


def test_limits_default_as_the_config_documents() -> None:
    defaults: dict[str, Any] = {"max_running": 2, "max_in_flight": 256}
    limits = BackfillLimits()
    assert {name: getattr(limits, name) for name in defaults} == defaults
    assert limits.lease == timedelta(seconds=15)
