"""A trigger's own retry policy (the `retry` extension field), as JSON; null: the global one.

Revision ID: 0003
Revises: 0002
Created: per-trigger retry policies
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("triggers") as batch:
        batch.add_column(sa.Column("retry", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("triggers") as batch:
        batch.drop_column("retry")
