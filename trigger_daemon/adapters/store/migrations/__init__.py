"""The store's Alembic migrations, run from code: no alembic.ini is needed at run time.

`upgrade_to_head` brings a database to the newest revision inside the caller's transaction,
so on SQLite (BEGIN IMMEDIATE) and PostgreSQL (an advisory lock) two processes starting at
once migrate one after the other, and the second finds nothing to do. (Within one process
that lock matters too: Alembic's `context` and `op` are module globals.)

To write the next revision, call `alembic.command.revision(alembic_config(), message,
rev_id="0002")` (with `sqlalchemy.url` set on the config and `autogenerate=True` for a draft
diffed against schema.py), then spell its DDL out by hand as 0001 does.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

SCRIPT_LOCATION = Path(__file__).resolve().parent

# Any constant shared by every replica; it names the lock that serialises upgrades.
_POSTGRES_UPGRADE_LOCK = 0x7472_6967_6765_72  # "trigger"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for this package; env.py uses `connection` when given."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_to_head(connection: Connection) -> None:
    """Apply every missing revision on `connection`, which is inside a transaction."""
    _lock_against_concurrent_upgrades(connection)
    command.upgrade(alembic_config(connection), "head")


def _lock_against_concurrent_upgrades(connection: Connection) -> None:
    # SQLite: the caller's BEGIN IMMEDIATE already holds the only write lock.
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_UPGRADE_LOCK}
        )
