"""The backfill part of the store (`ports.BackfillStore`) on SQLite, PostgreSQL and the
in-memory fake: the running limit, the lease (claim, renew, take-over after expiry, release),
progress saves of the holder only, cancel and finish."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from trigger_daemon.adapters.store import SqlStore, open_store
from trigger_daemon.core.backfills import Backfill, BackfillStatus, Counts, TooManyBackfills
from trigger_daemon.errors import NotFoundError
from trigger_daemon.testing import InMemoryStore

from .test_store import SQL_BACKENDS, database_url

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=15)


@pytest.fixture(params=[*SQL_BACKENDS, "memory"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[SqlStore | InMemoryStore]:
    if request.param == "memory":
        yield InMemoryStore()
        return
    opened = await open_store(database_url(request.param, request, tmp_path))
    yield opened
    await opened.close()


def backfill(number: int) -> Backfill:
    return Backfill(
        id=f"backfill-{number}",
        trigger_id="trigger-1",
        status=BackfillStatus.RUNNING,
        since=T0,
        until=T0 + timedelta(hours=1),
        topics=("ledger", "payments"),
        started_at=T0 + timedelta(seconds=number),
    )


async def test_more_running_backfills_than_allowed_are_refused(
    store: SqlStore | InMemoryStore,
) -> None:
    await store.create_backfill(backfill(1), max_running=2)
    await store.create_backfill(backfill(2), max_running=2)
    with pytest.raises(TooManyBackfills, match=r"backfill\.max_running"):
        await store.create_backfill(backfill(3), max_running=2)
    await store.cancel_backfill("backfill-1", T0)
    await store.create_backfill(backfill(3), max_running=2)
    listed = await store.list_backfills(limit=10)
    assert [b.id for b in listed] == ["backfill-3", "backfill-2", "backfill-1"]
    assert listed[2].status is BackfillStatus.CANCELLED
    assert listed[2].finished_at == T0
    assert listed[0] == backfill(3)
    with pytest.raises(NotFoundError):
        await store.get_backfill("nope")


async def test_one_replica_holds_a_lease_until_it_expires_or_is_released(
    store: SqlStore | InMemoryStore,
) -> None:
    await store.create_backfill(backfill(1), max_running=5)
    claimed = await store.claim_backfill("a:1", T0, T0 + LEASE, [])
    assert claimed is not None
    assert claimed[0].owner == "a:1"
    assert claimed[1] == {}
    # Held: nobody else gets it, and the holder skips what it already runs.
    assert await store.claim_backfill("b:1", T0 + timedelta(seconds=10), T0 + LEASE, []) is None
    assert await store.claim_backfill("a:1", T0, T0 + LEASE, ["backfill-1"]) is None
    positions = {("ledger", 0): 42, ("payments", 3): 7}
    assert await store.save_backfill_progress(_with_counts(3), positions, "a:1")
    assert not await store.save_backfill_progress(_with_counts(9), {}, "b:1")
    assert await store.renew_backfill_lease("backfill-1", "a:1", T0 + 2 * LEASE)
    assert not await store.renew_backfill_lease("backfill-1", "b:1", T0 + 2 * LEASE)
    # Expired: another replica takes it over, with the saved positions and counts.
    taken = await store.claim_backfill("b:1", T0 + 2 * LEASE + timedelta(seconds=1), T0, [])
    assert taken is not None
    assert taken[1] == positions
    assert taken[0].counts == Counts(scanned=3)
    assert taken[0].owner == "b:1"
    assert not await store.renew_backfill_lease("backfill-1", "a:1", T0 + 3 * LEASE)
    # A release lets anyone claim it at once; its own holder after a restart also may.
    assert await store.save_backfill_progress(_with_counts(4), positions, "b:1", release=True)
    assert (await store.get_backfill("backfill-1")).owner is None
    assert await store.claim_backfill("c:1", T0, T0 + LEASE, []) is not None
    assert await store.claim_backfill("c:1", T0, T0 + LEASE, []) is not None


async def test_a_finished_or_cancelled_backfill_is_never_claimed_and_cancel_wins(
    store: SqlStore | InMemoryStore,
) -> None:
    await store.create_backfill(backfill(1), max_running=5)
    await store.create_backfill(backfill(2), max_running=5)
    first = await store.claim_backfill("a:1", T0, T0 + LEASE, [])
    assert first is not None
    assert first[0].id == "backfill-1"
    cancelled = await store.cancel_backfill("backfill-1", T0 + timedelta(seconds=5))
    assert cancelled.status is BackfillStatus.CANCELLED
    assert not await store.renew_backfill_lease("backfill-1", "a:1", T0 + LEASE)
    # The holder's final save keeps `cancelled`, with the counts it reached.
    ended = _with_counts(5, status=BackfillStatus.SUCCEEDED)
    stored = await store.finish_backfill(ended, {("ledger", 0): 9}, "a:1")
    assert stored is not None
    assert (stored.status, stored.counts.scanned, stored.owner) == (
        BackfillStatus.CANCELLED,
        5,
        None,
    )
    second = await store.claim_backfill("a:1", T0, T0 + LEASE, [])
    assert second is not None
    assert second[0].id == "backfill-2"
    assert await store.finish_backfill(_with_counts(1, "backfill-2"), {}, "b:1") is None
    done = await store.finish_backfill(
        _with_counts(1, "backfill-2", status=BackfillStatus.FAILED, error="boom"), {}, "a:1"
    )
    assert done is not None
    assert (done.status, done.error) == (BackfillStatus.FAILED, "boom")
    assert done.finished_at == T0 + timedelta(hours=2)
    assert await store.claim_backfill("z:1", T0 + 10 * LEASE, T0 + 11 * LEASE, []) is None
    unchanged = await store.cancel_backfill("backfill-2", T0)
    assert unchanged.status is BackfillStatus.FAILED


def _with_counts(
    scanned: int,
    backfill_id: str = "backfill-1",
    status: BackfillStatus = BackfillStatus.RUNNING,
    error: str | None = None,
) -> Backfill:
    finished = None if status is BackfillStatus.RUNNING else T0 + timedelta(hours=2)
    return replace(
        backfill(int(backfill_id.rsplit("-", 1)[1])),
        counts=Counts(scanned=scanned),
        status=status,
        error=error,
        finished_at=finished,
    )
