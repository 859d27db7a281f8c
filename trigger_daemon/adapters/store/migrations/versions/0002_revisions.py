"""A change counter per kind of stored thing, for replicas to notice each other's changes.

Revision ID: 0002
Revises: 0001
Created: scale-out (several replicas on one PostgreSQL database)

`store_revisions` holds one row per counter; the row `triggers` is bumped in the same
transaction as every change to the triggers table, so a replica polling it (a primary-key
read) knows exactly when to reload its triggers. Spelled out in full, as 0001 is.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    revisions = op.create_table(
        "store_revisions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(revisions, [{"name": "triggers", "value": 0}])


def downgrade() -> None:
    op.drop_table("store_revisions")
