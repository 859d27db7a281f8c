"""The store's backfill rows: creation under the running limit, reads, cancel, and the lease.

Every lease rule is one conditional UPDATE, so two replicas racing for one backfill cannot
both win: PostgreSQL re-checks the WHERE clause of a row another transaction changed
meanwhile, and SQLite has one writer at a time. Creations take turns (an advisory lock on
PostgreSQL), so the running limit holds across replicas. Each function runs on the
connection it is given; `SqlStore` opens it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, and_, desc, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from trigger_daemon.adapters.store.dialects import serialise
from trigger_daemon.adapters.store.schema import backfills
from trigger_daemon.core.backfills import (
    Backfill,
    BackfillStatus,
    Counts,
    Positions,
    TooManyBackfills,
    positions_document,
    positions_of,
)

# Names the PostgreSQL advisory lock that makes backfill creations take turns.
_POSTGRES_CREATE_LOCK = 0x6261_636B_6669_6C6C  # "backfill"
_RUNNING = str(BackfillStatus.RUNNING)


async def create(conn: AsyncConnection, backfill: Backfill, max_running: int) -> None:
    await serialise(conn, _POSTGRES_CREATE_LOCK)
    count = select(func.count()).select_from(backfills).where(backfills.c.status == _RUNNING)
    running = int((await conn.execute(count)).scalar_one())
    if running >= max_running:
        raise TooManyBackfills(
            f"{running} backfills are running, the most allowed (backfill.max_running); "
            "try again when one has finished, or cancel one"
        )
    await conn.execute(
        backfills.insert().values(
            id=backfill.id,
            trigger_id=backfill.trigger_id,
            status=str(backfill.status),
            since=backfill.since,
            until=backfill.until,
            topics=list(backfill.topics),
            started_at=backfill.started_at,
            counts=backfill.counts.document(),
            positions=[],
        )
    )


async def by_id(conn: AsyncConnection, backfill_id: str) -> Backfill | None:
    row = (
        (await conn.execute(select(backfills).where(backfills.c.id == backfill_id)))
        .mappings()
        .first()
    )
    return None if row is None else _from_row(row)


async def newest(conn: AsyncConnection, limit: int) -> list[Backfill]:
    query = select(backfills).order_by(desc(backfills.c.started_at)).limit(limit)
    return [_from_row(row) for row in (await conn.execute(query)).mappings()]


async def cancel(conn: AsyncConnection, backfill_id: str, at: datetime) -> Backfill | None:
    await conn.execute(
        update(backfills)
        .where(backfills.c.id == backfill_id, backfills.c.status == _RUNNING)
        .values(status=str(BackfillStatus.CANCELLED), finished_at=at)
    )
    return await by_id(conn, backfill_id)


async def claimable(
    conn: AsyncConnection, owner: str, now: datetime, skip: Sequence[str]
) -> list[str]:
    """The ids of a few backfills `owner` may claim, oldest first: a read, so replicas with
    nothing to claim (nearly always) poll without taking a write lock."""
    query = select(backfills.c.id).where(_claimable(owner, now)).order_by(backfills.c.started_at)
    if skip:
        query = query.where(backfills.c.id.not_in(list(skip)))
    return list((await conn.execute(query.limit(5))).scalars())


async def claim(
    conn: AsyncConnection, owner: str, now: datetime, expires_at: datetime, candidates: list[str]
) -> tuple[Backfill, Positions] | None:
    """Take the first of `candidates` still claimable (another replica may have been first)."""
    claimable = _claimable(owner, now)
    for candidate in candidates:
        taken = await conn.execute(
            update(backfills)
            .where(backfills.c.id == candidate, claimable)
            .values(owner=owner, lease_expires_at=expires_at)
        )
        if taken.rowcount:
            row = (
                (await conn.execute(select(backfills).where(backfills.c.id == candidate)))
                .mappings()
                .one()
            )
            return _from_row(row), positions_of(row["positions"])
    return None


async def renew(conn: AsyncConnection, backfill_id: str, owner: str, expires_at: datetime) -> bool:
    renewed = await conn.execute(
        update(backfills)
        .where(_held(backfill_id, owner), backfills.c.status == _RUNNING)
        .values(lease_expires_at=expires_at)
    )
    return bool(renewed.rowcount)


async def save_progress(
    conn: AsyncConnection, backfill: Backfill, positions: Positions, owner: str, release: bool
) -> bool:
    values: dict[str, Any] = {
        "counts": backfill.counts.document(),
        "positions": positions_document(positions),
    }
    if release:
        values |= {"owner": None, "lease_expires_at": None}
    saved = await conn.execute(
        update(backfills)
        .where(_held(backfill.id, owner), backfills.c.status == _RUNNING)
        .values(**values)
    )
    return bool(saved.rowcount)


async def finish(
    conn: AsyncConnection, backfill: Backfill, positions: Positions, owner: str
) -> Backfill | None:
    values: dict[str, Any] = {
        "counts": backfill.counts.document(),
        "positions": positions_document(positions),
        "owner": None,
        "lease_expires_at": None,
    }
    ended = await conn.execute(
        update(backfills)
        .where(_held(backfill.id, owner), backfills.c.status == _RUNNING)
        .values(
            **values,
            status=str(backfill.status),
            finished_at=backfill.finished_at,
            error=backfill.error,
        )
    )
    if not ended.rowcount:
        # Cancelled while it ran: it stays cancelled, with the counts it reached.
        ended = await conn.execute(
            update(backfills)
            .where(
                _held(backfill.id, owner),
                backfills.c.status == str(BackfillStatus.CANCELLED),
            )
            .values(**values)
        )
    if not ended.rowcount:
        return None
    return await by_id(conn, backfill.id)


def _claimable(owner: str, now: datetime) -> Any:
    return and_(
        backfills.c.status == _RUNNING,
        or_(
            backfills.c.owner.is_(None),
            backfills.c.owner == owner,
            backfills.c.lease_expires_at < now,
        ),
    )


def _held(backfill_id: str, owner: str) -> Any:
    return and_(backfills.c.id == backfill_id, backfills.c.owner == owner)


def _from_row(row: RowMapping) -> Backfill:
    status = BackfillStatus(row["status"])
    return Backfill(
        id=row["id"],
        trigger_id=row["trigger_id"],
        status=status,
        since=row["since"],
        until=row["until"],
        topics=tuple(row["topics"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        error=row["error"],
        counts=Counts.of(row["counts"]),
        owner=row["owner"] if status is BackfillStatus.RUNNING else None,
    )
