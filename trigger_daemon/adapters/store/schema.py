"""The store's tables, as SQLAlchemy Core metadata: what the queries read and write.

This is the current shape of the schema. The Alembic migrations spell out their own DDL and
never import this module, so an old migration cannot change when this file does; a test
checks that migrating to head produces exactly these tables.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL keeps the offset (timestamptz). SQLite has no time zone type, so the value is
    stored as naive UTC and made aware again when read; a naive value given to the store is
    taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        aware = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.replace(tzinfo=None) if dialect.name == "sqlite" else aware

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


# SQLite only auto-assigns an INTEGER PRIMARY KEY; PostgreSQL wants 64 bits for a counter.
SequenceNumber = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

triggers = Table(
    "triggers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(256), nullable=True),
    Column("event", String(256), nullable=False),
    Column("version", String(64), nullable=True),
    Column("filter", Text, nullable=True),
    Column("workflow_id", String(256), nullable=False),
    Column("vars", JSON, nullable=False),
    Column("retry", JSON, nullable=True),
    Column("rate_limit", JSON, nullable=True),
    Column("max_concurrency", Integer, nullable=True),
    Column("source", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("source IN ('api', 'yaml')", name="ck_triggers_source"),
    Index("ix_triggers_event", "event"),
)

occurrences = Table(
    "occurrences",
    metadata,
    Column("seq", SequenceNumber, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False),
    # Not a foreign key: removing a trigger keeps its occurrences.
    Column("trigger_id", String(64), nullable=False),
    Column("event_id", Text, nullable=False),
    Column("date", UtcDateTime, nullable=False),
    Column("event", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("vars", JSON, nullable=False),
    Column("workflow_instance_id", Text, nullable=True),
    Column("workflow_instance", JSON(none_as_null=True), nullable=True),
    Column("error", Text, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("claimed_by", String(64), nullable=True),
    UniqueConstraint("id", name="uq_occurrences_id"),
    UniqueConstraint("trigger_id", "event_id", name="uq_occurrences_trigger_event"),
    CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="ck_occurrences_status"),
    Index("ix_occurrences_trigger_seq", "trigger_id", "seq"),
    # The shapes of Store.query_occurrences (occurrence_query.py says which reads which).
    Index("ix_occurrences_trigger_status_seq", "trigger_id", "status", "seq"),
    Index("ix_occurrences_trigger_date_seq", "trigger_id", "date", "seq"),
    Index("ix_occurrences_status_seq", "status", "seq"),
    Index("ix_occurrences_date_seq", "date", "seq"),
    Index("ix_occurrences_event", "event_id"),
    # A seq is never reused, even after the newest row is deleted: API cursors stay valid.
    sqlite_autoincrement=True,
)

# One counter per kind of stored thing, bumped in the same transaction as every change to it:
# replicas poll the `triggers` row to know when to reload their triggers.
store_revisions = Table(
    "store_revisions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

TRIGGERS_REVISION = "triggers"

# Finished backtests, kept for `backtest.keep_finished_hours` so any replica can answer for
# them; `body` is the whole answer (counts and samples) as JSON.
backtests = Table(
    "backtests",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=False),
    Column("body", JSON, nullable=False),
    Index("ix_backtests_started_at", "started_at"),
    Index("ix_backtests_finished_at", "finished_at"),
)
