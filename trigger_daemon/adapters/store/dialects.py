"""What SQLite and PostgreSQL spell differently in the store's writes.

Insert-if-absent (the key of a trigger or of an occurrence already stored) and the
transaction-scoped lock that makes YAML reconciliations take turns. How an occurrence page
names its trigger also differs, for each planner's sake: see queries.py.
"""

from __future__ import annotations

from sqlalchemy import Insert, Table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from trigger_daemon.errors import StoreError


def insert_if_absent(conn: AsyncConnection | Connection, table: Table) -> Insert:
    """INSERT that skips rows whose key already exists, as the connected dialect spells it."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise StoreError(f"store: unsupported database {conn.dialect.name!r}", retriable=False)


async def serialise(conn: AsyncConnection, key: int) -> None:
    """Hold a lock named `key` until this transaction ends. SQLite needs none: the writer's
    BEGIN IMMEDIATE already holds the database's only write lock."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
