"""Backfills: a trigger run for real over past events, with its position and its lease.

Revision ID: 0007
Revises: 0006
Created: backfills (durable, resumable, run by one replica at a time)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "backfills",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("trigger_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("positions", sa.JSON(), nullable=False),
        sa.Column("owner", sa.String(256), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'cancelled')",
            name="ck_backfills_status",
        ),
    )
    op.create_index("ix_backfills_status", "backfills", ["status"])
    op.create_index("ix_backfills_started_at", "backfills", ["started_at"])


def downgrade() -> None:
    op.drop_table("backfills")
