"""The store's backtest rows and the already-occurred lookup a backtest makes.

A finished backtest is one row: its id, status and times as columns (listing and expiry read
them) and the whole `core.backtests.Backtest` as JSON in `body`. Each function runs on the
connection it is given; `SqlStore` opens it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, desc, select
from sqlalchemy.ext.asyncio import AsyncConnection

from trigger_daemon.adapters.store.schema import backtests, occurrences
from trigger_daemon.core.backtests import Backtest, BacktestStatus, Sample

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
            body=to_body(backtest),
        )
    )


async def by_id(conn: AsyncConnection, backtest_id: str) -> Backtest | None:
    query = select(backtests.c.body).where(backtests.c.id == backtest_id)
    body = (await conn.execute(query)).scalar_one_or_none()
    return None if body is None else from_body(body)


async def newest(conn: AsyncConnection, limit: int) -> list[Backtest]:
    query = select(backtests.c.body).order_by(desc(backtests.c.started_at)).limit(limit)
    return [from_body(body) for body in (await conn.execute(query)).scalars()]


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


def to_body(backtest: Backtest) -> dict[str, Any]:
    return {
        "id": backtest.id,
        "status": str(backtest.status),
        "triggerID": backtest.trigger_id,
        "since": backtest.since.isoformat(),
        "until": backtest.until.isoformat(),
        "topics": list(backtest.topics),
        "startedAt": backtest.started_at.isoformat(),
        "finishedAt": backtest.finished_at.isoformat() if backtest.finished_at else None,
        "error": backtest.error,
        "scanned": backtest.scanned,
        "matched": backtest.matched,
        "filterErrors": backtest.filter_errors,
        "varErrors": backtest.var_errors,
        "alreadyOccurred": backtest.already_occurred,
        "unprocessable": backtest.unprocessable,
        "read": backtest.read,
        "total": backtest.total,
        "samples": [
            {
                "eventID": sample.event_id,
                "date": sample.date.isoformat(),
                "topic": sample.topic,
                "partition": sample.partition,
                "offset": sample.offset,
                "vars": sample.vars,
                "error": sample.error,
            }
            for sample in backtest.samples
        ],
    }


def from_body(body: dict[str, Any]) -> Backtest:
    finished_at = body["finishedAt"]
    return Backtest(
        id=body["id"],
        status=BacktestStatus(body["status"]),
        trigger_id=body["triggerID"],
        since=datetime.fromisoformat(body["since"]),
        until=datetime.fromisoformat(body["until"]),
        topics=tuple(body["topics"]),
        started_at=datetime.fromisoformat(body["startedAt"]),
        finished_at=None if finished_at is None else datetime.fromisoformat(finished_at),
        error=body["error"],
        scanned=body["scanned"],
        matched=body["matched"],
        filter_errors=body["filterErrors"],
        var_errors=body["varErrors"],
        already_occurred=body["alreadyOccurred"],
        unprocessable=body["unprocessable"],
        read=body["read"],
        total=body["total"],
        samples=tuple(
            Sample(
                event_id=sample["eventID"],
                date=datetime.fromisoformat(sample["date"]),
                topic=sample["topic"],
                partition=sample["partition"],
                offset=sample["offset"],
                vars=sample["vars"],
                error=sample["error"],
            )
            for sample in body["samples"]
        ),
    )
