"""The two writes every matched record makes, spelled for SQLite's driver directly.

SQLAlchemy runs each bound value through its type's processing in Python (dates to text, JSON
to text, then the positional order), and in the store's writer thread that work holds the
interpreter lock the event loop needs: 15 % of the lock's time in the matched benchmark, most
of it there. Here the values are given the forms SQLAlchemy stores on SQLite
(`schema.UtcDateTime`: naive UTC text with microseconds; JSON through `engine.compact_json`)
and sent as the driver's own parameters. A test writes the same occurrences both ways and
compares the stored rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from trigger_daemon.adapters.store.engine import compact_json
from trigger_daemon.core.occurrences import OccurrenceStatus

_PENDING_COLUMNS = (
    "id",
    "trigger_id",
    "event_id",
    "date",
    "event",
    "status",
    "attempts",
    "vars",
    "workflow_instance_id",
    "workflow_instance",
    "error",
    "updated_at",
    "claimed_by",
)
# 13 parameters a row: far below SQLite's 32,766 per statement.
_ROWS_PER_INSERT = 500
_INSERT_HEAD = f"INSERT INTO occurrences ({', '.join(_PENDING_COLUMNS)}) VALUES "
_INSERT_ROW = f"({', '.join('?' * len(_PENDING_COLUMNS))})"
_INSERT_TAIL = " ON CONFLICT DO NOTHING RETURNING id, seq"

_FINISH_PENDING = (
    "UPDATE occurrences SET status = ?, attempts = ?, vars = ?, workflow_instance_id = ?, "
    f"workflow_instance = ?, error = ?, updated_at = ? WHERE id = ? AND status = "
    f"'{OccurrenceStatus.PENDING}'"
)


def insert_pending(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Insert the rows (`rows.pending_values`) whose (trigger, event) pair is new; the seq of
    each id inserted."""
    seqs: dict[str, int] = {}
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        statement = _INSERT_HEAD + ", ".join([_INSERT_ROW] * len(chunk)) + _INSERT_TAIL
        parameters = tuple(value for row in chunk for value in _pending_parameters(row))
        seqs.update((id_, seq) for id_, seq in conn.exec_driver_sql(statement, parameters))
    return seqs


def finish_pending(conn: Connection, outcomes: Sequence[tuple[str, Mapping[str, Any]]]) -> int:
    """Write each (id, `rows.outcome_values`) to its row if still pending; how many changed."""
    parameters = [
        (
            values["status"],
            values["attempts"],
            compact_json(values["vars"]),
            values["workflow_instance_id"],
            _nullable_json(values["workflow_instance"]),
            values["error"],
            _datetime(values["updated_at"]),
            id_,
        )
        for id_, values in outcomes
    ]
    return conn.exec_driver_sql(_FINISH_PENDING, parameters).rowcount


def _pending_parameters(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        row["id"],
        row["trigger_id"],
        row["event_id"],
        _datetime(row["date"]),
        compact_json(row["event"]),
        row["status"],
        row["attempts"],
        compact_json(row["vars"]),
        row["workflow_instance_id"],
        _nullable_json(row["workflow_instance"]),
        row["error"],
        _datetime(row["updated_at"]),
        row["claimed_by"],
    )


def _datetime(value: datetime) -> str:
    """As `UtcDateTime` then SQLAlchemy's SQLite DATETIME store it (microseconds always)."""
    naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return naive.isoformat(sep=" ", timespec="microseconds")


def _nullable_json(value: Any) -> str | None:
    return None if value is None else compact_json(value)
