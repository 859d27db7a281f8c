"""A trigger's flow control (the `rateLimit` and `maxConcurrency` extension fields); null: none.

Revision ID: 0006
Revises: 0005
Created: per-trigger rate limits and concurrency caps
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("triggers") as batch:
        batch.add_column(sa.Column("rate_limit", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("max_concurrency", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("triggers") as batch:
        batch.drop_column("max_concurrency")
        batch.drop_column("rate_limit")
