"""The trigger and occurrence store: `ports.Store` on SQLAlchemy Core, SQLite or PostgreSQL.

Owns the tables (schema.py) and their Alembic migrations (migrations/), the engine set-up
(engine.py), the `SqlStore` itself (sql.py) with its reads (queries.py), the planning of a
YAML reconciliation (reconcile.py), how occurrence writes are batched and run
(group_commit.py, occurrence_writes.py, thread_writer.py), what the dialects spell
differently (dialects.py) and how library errors become StoreError (errors.py).
`open_store(url)` is the one way in: it builds the engine, migrates the database to the
newest revision and returns a ready `SqlStore`. Replicas starting at once on one PostgreSQL
database migrate one at a time (an advisory lock, see migrations/); the others wait, then
find nothing to do.
"""

from __future__ import annotations

import asyncio

from alembic.util.exc import CommandError
from sqlalchemy.ext.asyncio import AsyncEngine

from trigger_daemon.adapters.store.engine import (
    PoolLimits,
    create_engine,
    sqlite_file_writer,
    writer,
)
from trigger_daemon.adapters.store.errors import store_errors
from trigger_daemon.adapters.store.migrations import upgrade_to_head
from trigger_daemon.adapters.store.sql import SqlStore
from trigger_daemon.adapters.store.thread_writer import ThreadWriter
from trigger_daemon.core.retry import RetryPolicy, backoff_delay
from trigger_daemon.errors import StoreError

__all__ = ["PoolLimits", "SqlStore", "open_store"]


# Retries of the first connection and migration. Full jitter waits half the ceiling on
# average: about 6 s in all before giving up, for a database that is still starting.
_OPEN_RETRY = RetryPolicy(max_attempts=6, initial_backoff_seconds=0.4, max_backoff_seconds=6.4)


async def open_store(url: str, *, pool: PoolLimits | None = None) -> SqlStore:
    """Connect to `url` (sqlite:///PATH, sqlite:///:memory:, postgresql://…), bring its
    schema to the newest revision, and return the store. `pool` bounds the PostgreSQL
    connections. Raises ConfigError for a URL this daemon cannot use and StoreError when the
    database cannot be reached or migrated."""
    engine = create_engine(url, pool=pool)
    try:
        await _migrate_with_retries(engine)
    except BaseException:
        await engine.dispose()
        raise
    file_writer = sqlite_file_writer(url)
    return SqlStore(engine, ThreadWriter(file_writer) if file_writer is not None else None)


async def _migrate_with_retries(engine: AsyncEngine) -> None:
    """Retry a retriable failure at start: a database still starting, or (SQLite) another
    process switching a new file to WAL at the same moment, which busy_timeout does not cover."""
    for attempt in range(1, _OPEN_RETRY.max_attempts + 1):
        try:
            await _migrate(engine)
            return
        except StoreError as exc:
            if not exc.retriable or attempt == _OPEN_RETRY.max_attempts:
                raise
            await asyncio.sleep(backoff_delay(_OPEN_RETRY, attempt))


async def _migrate(engine: AsyncEngine) -> None:
    # Name the database for the operator (a first connection fails here); never its password.
    where = engine.url.render_as_string(hide_password=True)
    with store_errors(f"open {where}"):
        async with writer(engine).begin() as conn:
            try:
                await conn.run_sync(upgrade_to_head)
            except CommandError as exc:
                raise StoreError(
                    f"store: open {where} failed: {exc} (is the database from a newer "
                    "trigger-daemon?)",
                    retriable=False,
                ) from exc
