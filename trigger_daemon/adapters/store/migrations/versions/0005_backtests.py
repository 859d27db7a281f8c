"""Finished backtests, kept for a while so that any replica can answer for them.

Revision ID: 0005
Revises: 0004
Created: backtests (a dry run of a trigger over the events already in Kafka)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "backtests",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
    )
    op.create_index("ix_backtests_started_at", "backtests", ["started_at"])
    op.create_index("ix_backtests_finished_at", "backtests", ["finished_at"])


def downgrade() -> None:
    op.drop_table("backtests")
