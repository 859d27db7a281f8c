"""The indexes that keep each occurrence query one bounded index range (occurrence_query.py).

Revision ID: 0004
Revises: 0003
Created: occurrence queries by status, time and event
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_INDEXES = {
    "ix_occurrences_trigger_status_seq": ["trigger_id", "status", "seq"],
    "ix_occurrences_trigger_date_seq": ["trigger_id", "date", "seq"],
    "ix_occurrences_status_seq": ["status", "seq"],
    "ix_occurrences_date_seq": ["date", "seq"],
    "ix_occurrences_event": ["event_id"],
}


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(name, "occurrences", columns)


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="occurrences")
