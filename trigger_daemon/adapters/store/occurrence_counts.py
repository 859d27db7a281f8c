"""How many occurrences each trigger had since a moment, by status: one grouped query.

The console shows these per trigger (the last 24 hours). The query bounds `date` from below
only, so it reads one range of an index on `date` where there is one (`ix_occurrences_date_seq`)
and groups what it finds; the rows themselves (events, vars) are never read.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from trigger_daemon.adapters.store.schema import occurrences
from trigger_daemon.core.occurrences import OccurrenceStatus
from trigger_daemon.ports import OccurrenceCounts


async def counts_since(conn: AsyncConnection, since: datetime) -> OccurrenceCounts:
    query = (
        select(occurrences.c.trigger_id, occurrences.c.status, func.count())
        .where(occurrences.c.date >= since)
        .group_by(occurrences.c.trigger_id, occurrences.c.status)
    )
    counts: OccurrenceCounts = {}
    for trigger_id, status, count in (await conn.execute(query)).all():
        counts.setdefault(trigger_id, {})[OccurrenceStatus(status)] = int(count)
    return counts
