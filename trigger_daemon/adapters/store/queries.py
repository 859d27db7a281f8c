"""The store's reads: triggers, the triggers revision, occurrences by id, by (trigger, event),
and occurrences selected by an OccurrenceFilter, page by page (occurrence_query.py).

Each function runs its query on the connection it is given and returns models, not rows.
The reads of the store's API are async; those an occurrence write makes within its own
transaction (occurrence_writes.py) take that transaction's synchronous connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.engine import Connection, Result
from sqlalchemy.ext.asyncio import AsyncConnection

from trigger_daemon.adapters.store.occurrence_query import occurrence_query
from trigger_daemon.adapters.store.rows import occurrence_from_row, trigger_from_row
from trigger_daemon.adapters.store.schema import (
    TRIGGERS_REVISION,
    occurrences,
    store_revisions,
    triggers,
)
from trigger_daemon.core.occurrences import Occurrence, OccurrenceFilter, OccurrenceKey
from trigger_daemon.core.triggers import Trigger, TriggerSource

# Bound parameters per SELECT … IN stay far below every backend's limit.
PAIRS_PER_QUERY = 400


# Triggers


async def list_triggers(conn: AsyncConnection, name: str | None) -> list[Trigger]:
    """All triggers, oldest first; those whose name holds `name` (any case) when given."""
    query = select(triggers).order_by(triggers.c.created_at, triggers.c.id)
    if name:
        query = query.where(triggers.c.name.ilike(f"%{_escape_like(name)}%", escape="\\"))
    # An async connection's result arrives buffered: reading it is CPU work only (column
    # types, then validation: 0.7 s for 10,000 triggers on the benchmark machine), done in a
    # thread so that the event loop keeps its turns meanwhile.
    result = await conn.execute(query)
    return await asyncio.to_thread(_triggers_from_result, result)


def _triggers_from_result(result: Result[Any]) -> list[Trigger]:
    return [trigger_from_row(row) for row in result.mappings()]


async def trigger_by_id(conn: AsyncConnection, trigger_id: str) -> Trigger | None:
    query = select(triggers).where(triggers.c.id == trigger_id)
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else trigger_from_row(row)


async def yaml_triggers(conn: AsyncConnection) -> dict[str, Trigger]:
    """The triggers loaded from YAML files, by id."""
    query = select(triggers).where(triggers.c.source == str(TriggerSource.YAML))
    rows = (await conn.execute(query)).mappings().all()
    return {row["id"]: trigger_from_row(row) for row in rows}


async def triggers_revision(conn: AsyncConnection) -> int:
    query = select(store_revisions.c.value).where(store_revisions.c.name == TRIGGERS_REVISION)
    value = (await conn.execute(query)).scalar_one_or_none()
    return int(value or 0)


def _escape_like(text_: str) -> str:
    return text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# Occurrences


async def occurrence_by_id(conn: AsyncConnection, occurrence_id: str) -> Occurrence | None:
    query = select(occurrences).where(occurrences.c.id == occurrence_id)
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else occurrence_from_row(row)


def occurrences_by_id(conn: Connection, ids: Sequence[str]) -> dict[str, Occurrence]:
    """The stored occurrences of `ids`, by id; unknown ids are absent."""
    found: dict[str, Occurrence] = {}
    for start in range(0, len(ids), PAIRS_PER_QUERY):
        query = select(occurrences).where(
            occurrences.c.id.in_(ids[start : start + PAIRS_PER_QUERY])
        )
        for row in conn.execute(query).mappings():
            found[row["id"]] = occurrence_from_row(row)
    return found


def occurrences_by_pair(
    conn: Connection, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Occurrence]:
    """The stored occurrences of (trigger id, event id) `pairs`, by pair; unknown ones absent."""
    found: dict[tuple[str, str], Occurrence] = {}
    for start in range(0, len(pairs), PAIRS_PER_QUERY):
        chunk = pairs[start : start + PAIRS_PER_QUERY]
        key = tuple_(occurrences.c.trigger_id, occurrences.c.event_id)
        rows = conn.execute(select(occurrences).where(key.in_(chunk))).mappings()
        for row in rows:
            found[(row["trigger_id"], row["event_id"])] = occurrence_from_row(row)
    return found


async def query_occurrences(
    conn: AsyncConnection,
    selected: OccurrenceFilter,
    *,
    limit: int,
    before: OccurrenceKey | None,
    after: OccurrenceKey | None,
) -> list[Occurrence]:
    """Up to `limit` of the occurrences `selected` admits, between the cursors, newest first."""
    query = occurrence_query(conn.dialect.name, selected, limit, before, after)
    rows = (await conn.execute(query)).mappings().all()
    page = [occurrence_from_row(row) for row in rows]
    return page[::-1] if after is not None else page
