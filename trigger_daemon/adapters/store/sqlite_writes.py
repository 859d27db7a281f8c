"""The two writes every matched record makes, spelled for SQLite's driver directly.

SQLAlchemy runs each bound value through its type's processing in Python (dates to text, JSON
to text, then the positional order), and in the store's writer thread that work holds the
interpreter lock the event loop needs: 15 % of the lock's time in the matched benchmark, most
of it there. Here each value is given the form SQLAlchemy stores on SQLite for its column's
type (`schema.UtcDateTime`: naive UTC text with microseconds; JSON through
`engine.compact_json`) and sent as the driver's own parameter. A test writes the same
occurrences both ways and compares the stored rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlalchemy.engine import Connection

from trigger_daemon.adapters.store.engine import compact_json
from trigger_daemon.adapters.store.rows import OUTCOME_COLUMNS
from trigger_daemon.adapters.store.schema import UtcDateTime, occurrences
from trigger_daemon.core.occurrences import OccurrenceStatus

Convert = Callable[[Any], Any]


def _datetime(value: datetime) -> str:
    """As `UtcDateTime` then SQLAlchemy's SQLite DATETIME store it (microseconds always)."""
    naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return naive.isoformat(sep=" ", timespec="microseconds")


def _nullable_json(value: Any) -> str | None:
    return None if value is None else compact_json(value)


def _as_is(value: Any) -> Any:
    return value


def _conversion(column: Column[Any]) -> Convert:
    if isinstance(column.type, UtcDateTime):
        return _datetime
    if isinstance(column.type, JSON):
        return _nullable_json if column.type.none_as_null else compact_json
    return _as_is


# Every column but the store-assigned seq, with its conversion, in the statement's order.
_PENDING = [(c.name, _conversion(c)) for c in occurrences.columns if c.name != "seq"]
_OUTCOME = [(name, _conversion(occurrences.c[name])) for name in OUTCOME_COLUMNS]
# SQLite takes 32,766 parameters a statement: 500 rows of 13 stay far below.
_ROWS_PER_INSERT = 500
_INSERT_HEAD = f"INSERT INTO occurrences ({', '.join(name for name, _ in _PENDING)}) VALUES "
_INSERT_ROW = f"({', '.join('?' * len(_PENDING))})"
_INSERT_TAIL = " ON CONFLICT DO NOTHING RETURNING id, seq"
_FINISH_PENDING = (
    f"UPDATE occurrences SET {', '.join(f'{name} = ?' for name, _ in _OUTCOME)} "
    f"WHERE id = ? AND status = '{OccurrenceStatus.PENDING}'"
)


def insert_pending(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Insert the rows (`rows.pending_values`) whose (trigger, event) pair is new; the seq of
    each id inserted."""
    seqs: dict[str, int] = {}
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        statement = _INSERT_HEAD + ", ".join([_INSERT_ROW] * len(chunk)) + _INSERT_TAIL
        parameters = tuple(convert(row[name]) for row in chunk for name, convert in _PENDING)
        seqs.update((id_, seq) for id_, seq in conn.exec_driver_sql(statement, parameters))
    return seqs


def finish_pending(conn: Connection, outcomes: Sequence[tuple[str, Mapping[str, Any]]]) -> int:
    """Write each (id, `rows.outcome_values`) to its row if still pending; how many changed."""
    parameters = [
        (*(convert(values[name]) for name, convert in _OUTCOME), id_) for id_, values in outcomes
    ]
    return conn.exec_driver_sql(_FINISH_PENDING, parameters).rowcount
