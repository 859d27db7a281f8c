"""Triggers and their occurrences.

Revision ID: 0001
Revises:
Created: the first release

The DDL is written out in full rather than taken from schema.py, so this revision creates the
same tables forever, whatever schema.py becomes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    _create_triggers()
    _create_occurrences()


def downgrade() -> None:
    op.drop_table("occurrences")
    op.drop_table("triggers")


def _create_triggers() -> None:
    op.create_table(
        "triggers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("event", sa.String(256), nullable=False),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("filter", sa.Text(), nullable=True),
        sa.Column("workflow_id", sa.String(256), nullable=False),
        sa.Column("vars", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("source IN ('api', 'yaml')", name="ck_triggers_source"),
    )
    op.create_index("ix_triggers_event", "triggers", ["event"])


def _create_occurrences() -> None:
    op.create_table(
        "occurrences",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("trigger_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("vars", sa.JSON(), nullable=False),
        sa.Column("workflow_instance_id", sa.Text(), nullable=True),
        sa.Column("workflow_instance", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("id", name="uq_occurrences_id"),
        sa.UniqueConstraint("trigger_id", "event_id", name="uq_occurrences_trigger_event"),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed')", name="ck_occurrences_status"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_occurrences_trigger_seq", "occurrences", ["trigger_id", "seq"])
