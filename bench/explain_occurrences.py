"""EXPLAIN ANALYZE of the occurrence queries on a PostgreSQL table with millions of rows.

Seeds `--rows` occurrences (default 2,000,000: half for one busy trigger, the rest spread over
nine others, one in fifty failed and the newest twenty pending; plus a dormant trigger with a
quarter as many again, all older than the rest, one in a hundred failed, and a rare one with
ten) in a fresh database, then prints PostgreSQL's plan and timing for the queries the daemon
runs against that table: the v2 listing's first page, a page deep in the history and the way
back (the cursor order, `seq` descending), the v1 listing, the lookup by (trigger, event) that
every delivered event makes, and each shape of the filtered listings (`Store.query_occurrences`:
per trigger by status and by time window, across triggers by event, status and time window,
and unfiltered).

    .venv/bin/python bench/explain_occurrences.py                 # a private cluster
    .venv/bin/python bench/explain_occurrences.py --url postgresql://USER@HOST/DB  # yours

With no --url it starts a private cluster like the tests do (trigger_daemon/devtools/postgres.py:
Debian's `postgresql` package, initdb in a temporary directory) and removes it afterwards.
The queries are built by the store's own code (adapters/store/occurrence_query.py), so the
plans are the daemon's.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Select, text
from sqlalchemy.dialects import postgresql

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trigger_daemon.adapters.store import PoolLimits, open_store  # noqa: E402
from trigger_daemon.adapters.store.occurrence_query import occurrence_query  # noqa: E402
from trigger_daemon.adapters.store.schema import occurrences  # noqa: E402
from trigger_daemon.core.occurrences import (  # noqa: E402
    OccurrenceFilter,
    OccurrenceKey,
    OccurrenceStatus,
)
from trigger_daemon.devtools.postgres import PostgresCluster  # noqa: E402

PAGE = 15 + 1  # the API asks for one more than the page size, to know whether more follow

_SEED = """
INSERT INTO occurrences (id, trigger_id, event_id, date, event, status, attempts, vars,
                         workflow_instance_id, workflow_instance, error, updated_at)
SELECT gen_random_uuid()::text,
       CASE WHEN g % 2 = 0 THEN 'busy' ELSE 'trigger-' || (g % 9) END,
       'COMMITTED_TRANSACTIONS:tx-main-' || g,
       now() - make_interval(secs => CAST(:rows AS bigint) - g),
       json_build_object('type', 'COMMITTED_TRANSACTIONS', 'ledger', 'main',
                         'payload', json_build_object('transactions', json_build_array(
                             json_build_object('id', g, 'postings', json_build_array(
                                 json_build_object('source', 'world', 'destination',
                                                   'users:' || (g % 1000), 'amount', g,
                                                   'asset', 'USD/2')))))),
       CASE WHEN g % 50 = 0 THEN 'failed'
            WHEN g > CAST(:rows AS bigint) - 20 THEN 'pending'
            ELSE 'succeeded' END,
       1,
       json_build_object('txid', g::text),
       gen_random_uuid()::text,
       json_build_object('id', g, 'workflowID', 'book', 'terminated', false),
       NULL,
       now()
FROM generate_series(CAST(:start AS bigint), CAST(:stop AS bigint)) AS g
"""

# Written first, so all its rows are the oldest: a trigger that fired a lot, long ago.
_DORMANT = """
INSERT INTO occurrences (id, trigger_id, event_id, date, event, status, attempts, vars,
                         updated_at)
SELECT gen_random_uuid()::text, 'dormant', 'SAVED_PAYMENT:old-' || g,
       now() - make_interval(secs => CAST(:rows AS bigint) + CAST(:dormant AS bigint) - g),
       '{"type": "SAVED_PAYMENT", "payload": {}}'::json,
       CASE WHEN g % 100 = 0 THEN 'failed' ELSE 'succeeded' END, 1, '{}'::json, now()
FROM generate_series(1, CAST(:dormant AS bigint)) AS g
"""

_RARE = """
INSERT INTO occurrences (id, trigger_id, event_id, date, event, status, attempts, vars,
                         updated_at)
SELECT gen_random_uuid()::text, 'rare', 'SAVED_PAYMENT:p-' || g, now(),
       '{"type": "SAVED_PAYMENT", "payload": {}}'::json, 'succeeded', 1, '{}'::json, now()
FROM generate_series(1, 10) AS g
"""


def page(
    trigger_id: str, *, limit: int = PAGE, before: int | None = None, after: int | None = None
) -> str:
    """The listing query exactly as the store builds it for PostgreSQL, values inlined."""
    selected = OccurrenceFilter(trigger_id=trigger_id)
    before_key = None if before is None else OccurrenceKey(before)
    after_key = None if after is None else OccurrenceKey(after)
    return _sql(occurrence_query("postgresql", selected, limit, before_key, after_key))


def filtered(
    *,
    before: OccurrenceKey | None = None,
    after: OccurrenceKey | None = None,
    statuses: str = "",
    **fields: Any,
) -> str:
    """A filtered listing's query exactly as the store builds it for PostgreSQL."""
    wanted = frozenset(OccurrenceStatus(status) for status in statuses.split(",") if status)
    selected = OccurrenceFilter(statuses=wanted, **fields)
    return _sql(occurrence_query("postgresql", selected, PAGE, before, after))


def _sql(query: Select[Any]) -> str:
    return str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


async def explain(url: str, rows: int) -> None:
    # Migrates: the tables and indexes are the daemon's. Seeding outlasts the daemon's
    # statement timeout.
    store = await open_store(url, pool=PoolLimits(statement_timeout_seconds=3600))
    engine = store._engine
    try:
        started = time.monotonic()
        async with engine.begin() as conn:
            await conn.execute(text(_DORMANT), {"rows": rows, "dormant": rows // 4})
            for start in range(1, rows + 1, 500_000):
                stop = min(rows, start + 499_999)
                await conn.execute(text(_SEED), {"rows": rows, "start": start, "stop": stop})
            await conn.execute(text(_RARE))
        async with engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM ANALYZE occurrences"))
            seeded = rows + rows // 4 + 10
            print(f"seeded {seeded:,} occurrences in {time.monotonic() - started:.0f}s")
            for name, size in await _sizes(conn):
                print(f"  {name}: {size}")
            middle = int(
                (
                    await conn.execute(
                        text(
                            "SELECT seq FROM occurrences WHERE trigger_id = 'busy' "
                            "ORDER BY seq LIMIT 1 OFFSET :half"
                        ),
                        {"half": rows // 4},
                    )
                ).scalar_one()
            )
            pairs = "('busy', 'COMMITTED_TRANSACTIONS:tx-main-1000'), " + (
                "('trigger-1', 'COMMITTED_TRANSACTIONS:tx-main-1000')"
            )
            columns = ", ".join(column.name for column in occurrences.c)
            dormant = f"dormant trigger ({rows // 4:,} rows, all older than the rest)"
            queries = {
                f"v2 first page, busy trigger ({rows // 2:,} rows)": page("busy"),
                "v2 next page deep in the history (before_seq)": page("busy", before=middle),
                "v2 previous page (after_seq)": page("busy", after=middle),
                "v2 first page, rare trigger (10 rows)": page("rare"),
                f"v2 first page, {dormant}": page("dormant"),
                f"for comparison, that page as `trigger_id = t ORDER BY seq DESC`, {dormant}": (
                    f"SELECT {columns} FROM occurrences WHERE trigger_id = 'dormant' "
                    f"ORDER BY seq DESC LIMIT {PAGE}"
                ),
                "v1 listing (100 newest)": page("busy", limit=100),
                "redelivered event: lookup by (trigger_id, event_id), 2 pairs": (
                    f"SELECT {columns} FROM occurrences WHERE (trigger_id, event_id) IN ({pairs})"
                ),
                **await _filtered_queries(conn, rows, middle),
            }
            for title, sql in queries.items():
                plan = await conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"))
                print(f"\n-- {title}")
                print("\n".join(line for (line,) in plan))
    finally:
        await store.close()


async def _filtered_queries(conn: Any, rows: int, middle: int) -> dict[str, str]:
    """Each shape of Store.query_occurrences, on busy, dormant (all old) and empty ranges."""

    async def row_at(trigger_id: str, offset: int) -> OccurrenceKey:
        query = text(
            "SELECT seq, date FROM occurrences WHERE trigger_id = :trigger "
            "ORDER BY seq LIMIT 1 OFFSET :offset"
        )
        seq, date = (await conn.execute(query, {"trigger": trigger_id, "offset": offset})).one()
        return OccurrenceKey(seq, date)

    latest = (await conn.execute(text("SELECT max(date) FROM occurrences"))).scalar_one()
    busy = await row_at("busy", rows // 4)
    assert busy.seq == middle
    assert busy.date is not None
    dormant = await row_at("dormant", rows // 8)
    assert dormant.date is not None
    by_seq = OccurrenceKey(middle)
    hour, day = timedelta(hours=1), timedelta(days=1)
    last_hour: dict[str, Any] = {"since": latest - hour}
    busy_day: dict[str, Any] = {"since": busy.date - day, "until": busy.date + day}
    dormant_hour: dict[str, Any] = {
        "since": dormant.date - hour / 2,
        "until": dormant.date + hour / 2,
    }
    columns = ", ".join(column.name for column in occurrences.c)
    return {
        "per trigger + status: busy, failed": filtered(trigger_id="busy", statuses="failed"),
        "per trigger + status: busy, failed, next page deep in the history (before)": filtered(
            trigger_id="busy", statuses="failed", before=by_seq
        ),
        "per trigger + status: busy, failed, previous page (after)": filtered(
            trigger_id="busy", statuses="failed", after=by_seq
        ),
        "per trigger + two statuses: busy, pending or failed (one range each, merged)": filtered(
            trigger_id="busy", statuses="pending,failed"
        ),
        "per trigger + status: dormant (all old), failed": filtered(
            trigger_id="dormant", statuses="failed"
        ),
        "per trigger + status: dormant, pending (it has none)": filtered(
            trigger_id="dormant", statuses="pending"
        ),
        "for comparison, that query with `trigger_id = t AND status = s ORDER BY seq DESC`": (
            f"SELECT {columns} FROM occurrences WHERE trigger_id = 'dormant' "
            f"AND status = 'pending' ORDER BY seq DESC LIMIT {PAGE}"
        ),
        "per trigger + window: busy, the last hour": filtered(trigger_id="busy", **last_hour),
        "per trigger + window: busy, two days in the middle, next page (before)": filtered(
            trigger_id="busy", before=busy, **busy_day
        ),
        "per trigger + window: busy, two days in the middle, previous page (after)": filtered(
            trigger_id="busy", after=busy, **busy_day
        ),
        "per trigger + window: dormant, an hour in the middle of its history": filtered(
            trigger_id="dormant", **dormant_hour
        ),
        "per trigger + window: dormant, the last hour (it has none)": filtered(
            trigger_id="dormant", **last_hour
        ),
        "for comparison, that query with `trigger_id = t AND date >= x ORDER BY date, seq`": (
            f"SELECT {columns} FROM occurrences WHERE trigger_id = 'dormant' "
            f"AND date >= '{(latest - hour).isoformat()}' "
            f"ORDER BY date DESC, seq DESC LIMIT {PAGE}"
        ),
        "per trigger + window and status: busy, failed in the last hour (status filtered)": (
            filtered(trigger_id="busy", statuses="failed", **last_hour)
        ),
        "across triggers by event": filtered(event_id="COMMITTED_TRANSACTIONS:tx-main-1000"),
        "across triggers by event and status": filtered(
            event_id="COMMITTED_TRANSACTIONS:tx-main-1000", statuses="succeeded"
        ),
        "across triggers by status: failed": filtered(statuses="failed"),
        "across triggers by status: failed, next page deep in the history (before)": filtered(
            statuses="failed", before=by_seq
        ),
        "across triggers by status: pending": filtered(statuses="pending"),
        "across triggers by two statuses: pending or failed": filtered(statuses="pending,failed"),
        "across triggers by window: the last hour": filtered(**last_hour),
        "across triggers by window: two days in the middle, next page (before)": filtered(
            before=busy, **busy_day
        ),
        "across triggers by window: two days in the middle, previous page (after)": filtered(
            after=busy, **busy_day
        ),
        "across triggers by window: an hour in the dormant trigger's time": filtered(
            **dormant_hour
        ),
        "across triggers by window and status: failed in the last hour (status filtered)": (
            filtered(statuses="failed", **last_hour)
        ),
        "across triggers, no filter": filtered(),
        "across triggers, no filter, next page deep in the history (before)": filtered(
            before=by_seq
        ),
    }


async def _sizes(conn: Any) -> list[tuple[str, str]]:
    query = text(
        "SELECT c.relname, pg_size_pretty(pg_total_relation_size(c.oid)) "
        "FROM pg_class c WHERE c.relname LIKE '%occurrences%' ORDER BY c.relname"
    )
    return [(name, size) for name, size in await conn.execute(query)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a PostgreSQL database to seed (default: a private one)")
    parser.add_argument("--rows", type=int, default=2_000_000)
    args = parser.parse_args()
    if args.url:
        asyncio.run(explain(args.url, args.rows))
        return
    cluster = PostgresCluster.start()
    try:
        asyncio.run(explain(cluster.new_database("bench"), args.rows))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
