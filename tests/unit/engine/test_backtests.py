"""Backtests over the fakes: the store's occurrences, refusals, cancel, what is kept."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from trigger_daemon.core.backtests import (
    Backtest,
    BacktestRefused,
    BacktestRequest,
    BacktestStatus,
    TooManyBacktests,
)
from trigger_daemon.core.occurrences import NewOccurrence
from trigger_daemon.core.triggers import CompiledTrigger
from trigger_daemon.core.windows import epoch_ms
from trigger_daemon.engine.backtests import OCCURRED_BATCH, Backtests
from trigger_daemon.errors import NotFoundError
from trigger_daemon.ports import SourceRecord
from trigger_daemon.testing import InMemoryStore, ListHistory

from .builders import SETTLE, compiled_trigger, payment

SINCE = datetime(2024, 5, 1, tzinfo=UTC)


def stamped(events: list[dict[str, Any]], topic: str = "payments") -> list[SourceRecord]:
    """One record a second from SINCE."""
    return [
        SourceRecord(
            topic, 0, offset, None, json.dumps(event).encode(), (), epoch_ms(SINCE) + 1000 * offset
        )
        for offset, event in enumerate(events)
    ]


def request(compiled: CompiledTrigger, trigger_id: str | None, **fields: Any) -> BacktestRequest:
    values: dict[str, Any] = {
        "since": SINCE,
        "until": SINCE + timedelta(days=1),
        "topics": ("payments",),
    } | fields
    return BacktestRequest(compiled=compiled, trigger_id=trigger_id, **values)


async def test_already_occurred_counts_matched_events_with_an_occurrence_in_batches() -> None:
    store = InMemoryStore()
    compiled = await compiled_trigger(store, SETTLE)
    count = OCCURRED_BATCH + 50  # more than one store read
    records = stamped([payment(f"p-{n}", idempotency_key=f"k-{n}") for n in range(count)])
    occurred = [f"SAVED_PAYMENT:k-{n}" for n in range(0, count, 3)]
    now = datetime.now(UTC)
    await store.begin_occurrences(
        [NewOccurrence(compiled.trigger.id, e, {}, now) for e in occurred]
    )
    backtests = Backtests(ListHistory({"payments": records}, chunk_size=97), store)

    saved = await backtests.run(request(compiled, compiled.trigger.id))
    unsaved = await backtests.run(request(compiled, None))

    assert (saved.status, saved.matched, saved.already_occurred) == (
        BacktestStatus.SUCCEEDED,
        count,
        len(occurred),
    )
    assert unsaved.already_occurred == 0
    assert (saved.read, saved.total) == (count, count)
    assert store.backtests == {}  # a foreground run is not kept


async def test_unknown_topics_and_empty_windows_are_refused_before_starting() -> None:
    store = InMemoryStore()
    compiled = await compiled_trigger(store, SETTLE)
    backtests = Backtests(ListHistory({"payments": []}), store)

    with pytest.raises(BacktestRefused, match="topics: no such topic: nope"):
        await backtests.start(request(compiled, None, topics=("payments", "nope")))
    with pytest.raises(BacktestRefused, match="since"):
        await backtests.start(request(compiled, None, until=SINCE))


async def test_beyond_max_running_is_refused_and_cancel_ends_one_cancelled_and_kept() -> None:
    store = InMemoryStore()
    compiled = await compiled_trigger(store, SETTLE)
    history = ListHistory({"payments": stamped([payment()] * 500)}, chunk_size=100)
    history.flowing.clear()
    backtests = Backtests(history, store, max_running=1)

    started = await backtests.start(request(compiled, None))
    with pytest.raises(TooManyBacktests, match="max_running"):
        await backtests.start(request(compiled, None))
    ended = await backtests.cancel(started.id)

    assert started.status is BacktestStatus.RUNNING
    assert ended.status is BacktestStatus.CANCELLED
    assert ended.finished_at is not None
    assert await backtests.get(started.id) == ended == store.backtests[started.id]
    assert history.reads_open == 0
    again = await backtests.start(request(compiled, None))  # room again
    await backtests.close()
    assert again.id not in store.backtests  # a running one is forgotten at shutdown


async def test_a_finished_one_is_saved_and_listed_and_expires_after_keep_finished() -> None:
    store = InMemoryStore()
    compiled = await compiled_trigger(store, SETTLE)
    history = ListHistory({"payments": stamped([payment()] * 3)})
    backtests = Backtests(history, store, keep_finished=timedelta(hours=1))
    long_ago = await backtests.run(request(compiled, None))
    await store.save_backtest(replace(long_ago, finished_at=datetime.now(UTC) - timedelta(hours=2)))

    first = await finish(backtests, await backtests.start(request(compiled, None)))
    assert first.matched == 3
    assert first.id in store.backtests
    assert long_ago.id not in store.backtests  # finished more than keep_finished ago
    with pytest.raises(NotFoundError):
        await backtests.get(long_ago.id)
    second = await finish(backtests, await backtests.start(request(compiled, None)))
    assert [b.id for b in await backtests.recent()] == [second.id, first.id]


async def finish(backtests: Backtests, started: Backtest) -> Backtest:
    for _ in range(500):
        current = await backtests.get(started.id)
        if not current.is_running:
            return current
        await asyncio.sleep(0.01)
    raise AssertionError(f"backtest {started.id} did not finish")
