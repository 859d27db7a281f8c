"""The store's backtest rows and the already-occurred lookup a backtest makes.

A finished backtest is one row: its id, status and times as columns (listing and expiry read
them) and the whole backtest as JSON in `body` (`core.backtests.to_document`). Each function
runs on the connection it is given; `SqlStore` opens it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, desc, select
from sqlalchemy.ext.asyncio import AsyncConnection

from trigger_daemon.adapters.store.schema import backtests, occurrences
from trigger_daemon.core.backtests import Backtest, from_document, to_document

# Bound parameters per SELECT … IN stay far below every backend's limit.
EVENT_IDS_PER_QUERY = 400


async def save(conn: AsyncConnection, backtest: Backtest) -> None:
    if backtest.finished_at is None:
        raise ValueError(f"backtest {backtest.id} is still running: only finished ones are kept")
    await conn.execute(delete(backtests).where(backtests.c.id == backtest.id))
    await conn.execute(
        backtests.insert().values(
            id=backtest.id,
            status=str(backtest.status),
            started_at=backtest.started_at,
            finished_at=backtest.finished_at,
            body=to_document(backtest),
        )
    )


async def by_id(conn: AsyncConnection, backtest_id: str) -> Backtest | None:
    query = select(backtests.c.body).where(backtests.c.id == backtest_id)
    body = (await conn.execute(query)).scalar_one_or_none()
    return None if body is None else from_document(body)


async def newest(conn: AsyncConnection, limit: int) -> list[Backtest]:
    query = select(backtests.c.body).order_by(desc(backtests.c.started_at)).limit(limit)
    return [from_document(body) for body in (await conn.execute(query)).scalars()]


async def expire(conn: AsyncConnection, finished_before: datetime) -> int:
    removed = await conn.execute(delete(backtests).where(backtests.c.finished_at < finished_before))
    return int(removed.rowcount)


async def occurred_event_ids(
    conn: AsyncConnection, trigger_id: str, event_ids: Sequence[str]
) -> set[str]:
    """Read from the (trigger_id, event_id) unique index, a chunk of ids at a time."""
    found: set[str] = set()
    for start in range(0, len(event_ids), EVENT_IDS_PER_QUERY):
        chunk = event_ids[start : start + EVENT_IDS_PER_QUERY]
        query = select(occurrences.c.event_id).where(
            occurrences.c.trigger_id == trigger_id, occurrences.c.event_id.in_(chunk)
        )
        found.update((await conn.execute(query)).scalars())
    return found
