"""EXPLAIN ANALYZE of the occurrence queries on a PostgreSQL table with millions of rows.

Seeds `--rows` occurrences (default 2,000,000: half for one busy trigger, the rest spread over
nine others; plus a dormant trigger with a quarter as many again, all older than the rest,
and a rare one with ten) in a fresh database, then prints PostgreSQL's plan
and timing for the queries the daemon runs against that table: the v2 listing's first page,
a page deep in the history and the way back (the cursor order, `seq` descending), the v1
listing, and the lookup by (trigger, event) that every delivered event makes.

    .venv/bin/python bench/explain_occurrences.py                 # a private cluster
    .venv/bin/python bench/explain_occurrences.py --url postgresql://USER@HOST/DB  # yours

With no --url it starts a private cluster like the tests do (trigger_daemon/devtools/postgres.py:
Debian's `postgresql` package, initdb in a temporary directory) and removes it afterwards.
The queries are built by the store's own code (adapters/store/queries.py), so the plans are the
daemon's.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Select, text
from sqlalchemy.dialects import postgresql

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trigger_daemon.adapters.store import open_store  # noqa: E402
from trigger_daemon.adapters.store.queries import occurrence_page_query  # noqa: E402
from trigger_daemon.adapters.store.schema import occurrences  # noqa: E402
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
       CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'succeeded' END,
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
SELECT gen_random_uuid()::text, 'dormant', 'SAVED_PAYMENT:old-' || g, now(),
       '{"type": "SAVED_PAYMENT", "payload": {}}'::json, 'succeeded', 1, '{}'::json, now()
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
    query: Select[Any] = occurrence_page_query("postgresql", trigger_id, limit, before, after)
    return str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


async def explain(url: str, rows: int) -> None:
    store = await open_store(url)  # migrates: the tables and indexes are the daemon's
    engine = store._engine
    try:
        started = time.monotonic()
        async with engine.begin() as conn:
            await conn.execute(text(_DORMANT), {"dormant": rows // 4})
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
            }
            for title, sql in queries.items():
                plan = await conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"))
                print(f"\n-- {title}")
                print("\n".join(line for (line,) in plan))
    finally:
        await store.close()


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
