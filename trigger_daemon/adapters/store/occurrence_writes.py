"""The occurrence writes of one group commit, recorded in one synchronous transaction.

Concurrent records share a transaction (group_commit.py): some begin occurrences, others
record outcomes. An `OccurrenceBatch` is prepared in the event loop from their writes, and
its `record(connection)` then runs whole inside the transaction: in the writer thread for a
SQLite file (thread_writer.py), else through the async engine's `run_sync`. On SQLite the two
statements go through the driver directly (sqlite_writes.py).

Two rules of the store hold here, in the database: one occurrence per (trigger, event) is a
unique constraint, so an event delivered again finds its occurrence instead of adding one;
and only a `pending` row takes an outcome, so the first outcome written stays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.engine import Connection

from trigger_daemon.adapters.store import sqlite_writes
from trigger_daemon.adapters.store.dialects import insert_if_absent
from trigger_daemon.adapters.store.queries import occurrences_by_id, occurrences_by_pair
from trigger_daemon.adapters.store.rows import (
    OUTCOME_COLUMNS,
    occurrence_from_row,
    outcome_values,
    pending_values,
)
from trigger_daemon.adapters.store.schema import occurrences
from trigger_daemon.core.occurrences import NewOccurrence, Occurrence, OccurrenceStatus, Outcome

# What a record asks the store to write: an occurrence to begin, or an outcome to record.
OccurrenceWrite = NewOccurrence | tuple[Occurrence, Outcome]


class OccurrenceBatch:
    """The occurrences to begin and the outcomes to record of one group commit."""

    __slots__ = ("_outcomes", "_pending", "_writes", "operation")

    def __init__(self, writes: list[OccurrenceWrite]) -> None:
        self._writes = writes
        new = [write for write in writes if isinstance(write, NewOccurrence)]
        # Each pair and each id once, in key order: two writers then lock rows in the same
        # order, which PostgreSQL needs to avoid deadlocks between overlapping batches. (Two
        # replicas handling the same records during a rebalance may still deadlock, an insert
        # against an update: PostgreSQL then aborts one, a retriable error, and it is retried.)
        by_pair = {(n.trigger_id, n.event_id): n for n in new}
        now = datetime.now(UTC)
        self._pending = [pending_values(by_pair[pair], now) for pair in sorted(by_pair)]
        # Only a pending row changes: the first outcome written stays, whoever else finishes
        # it (within this batch too: the first submitted for an id).
        self._outcomes: dict[str, tuple[Occurrence, Outcome]] = {}
        for write in writes:
            if not isinstance(write, NewOccurrence):
                self._outcomes.setdefault(write[0].id, write)
        # Names the batch in a StoreError's message.
        self.operation = " and ".join(
            name
            for name, some in (("record occurrences", new), ("record outcomes", self._outcomes))
            if some
        )

    def record(self, conn: Connection) -> list[Occurrence | None]:
        """Write the batch on `conn`, within its transaction: the stored rows in the order of
        the writes (None for an outcome of an unknown id)."""
        begun = _record_pending(conn, self._pending)
        finished = _record_outcomes(conn, self._outcomes)
        return [
            begun[(write.trigger_id, write.event_id)]
            if isinstance(write, NewOccurrence)
            else finished.get(write[0].id)
            for write in self._writes
        ]


def _record_pending(
    conn: Connection, rows: Sequence[dict[str, Any]]
) -> dict[tuple[str, str], Occurrence]:
    """Insert the pending rows; every pair's stored occurrence, new or already there."""
    if not rows:
        return {}
    stored = _insert_pending(conn, rows)
    existing = [row for row in rows if (row["trigger_id"], row["event_id"]) not in stored]
    if existing:  # redelivered events: claim those still pending, read what is there
        _claim_pending(conn, existing)
        stored.update(
            occurrences_by_pair(conn, [(r["trigger_id"], r["event_id"]) for r in existing])
        )
    return stored


def _claim_pending(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Make this batch's claimant the claimant of the pairs that are still pending."""
    claims = [
        {
            "b_trigger_id": r["trigger_id"],
            "b_event_id": r["event_id"],
            "b_claimed_by": r["claimed_by"],
        }
        for r in rows
        if r["claimed_by"] is not None
    ]
    if claims:
        conn.execute(_CLAIM_PENDING, claims)


def _insert_pending(
    conn: Connection, rows: Sequence[dict[str, Any]]
) -> dict[tuple[str, str], Occurrence]:
    """Insert the rows whose pair is new; return those it inserted (by pair), in one round
    trip where the database can return inserted rows (PostgreSQL, SQLite >= 3.35)."""
    if not conn.dialect.insert_returning:
        conn.execute(insert_if_absent(conn, occurrences), rows)
        return {}
    # Only the ids and the store-assigned seq come back: the rest is what was just inserted,
    # and decoding each event's JSON again would cost more than the insert itself.
    if conn.dialect.name == "sqlite":
        seqs = sqlite_writes.insert_pending(conn, rows)
    else:
        insert = insert_if_absent(conn, occurrences)
        result = conn.execute(insert.returning(occurrences.c.id, occurrences.c.seq), rows)
        seqs = {id_: seq for id_, seq in result}
    return {
        (row["trigger_id"], row["event_id"]): occurrence_from_row({**row, "seq": seqs[row["id"]]})
        for row in rows
        if row["id"] in seqs
    }


def _record_outcomes(
    conn: Connection, outcomes: Mapping[str, tuple[Occurrence, Outcome]]
) -> dict[str, Occurrence]:
    """Write each pending occurrence's outcome; the stored rows by id (unknown ids absent)."""
    if not outcomes:
        return {}
    ids = sorted(outcomes)
    if conn.dialect.name == "sqlite":
        values = [(id_, outcome_values(outcomes[id_][1])) for id_ in ids]
        all_written = sqlite_writes.finish_pending(conn, values) == len(ids)
    else:
        params = [{"b_id": id_, **_outcome_params(outcomes[id_][1])} for id_ in ids]
        result = conn.execute(_FINISH_PENDING, params)
        all_written = conn.dialect.supports_sane_multi_rowcount and result.rowcount == len(ids)
    if all_written:
        # Every row was pending and now holds its outcome, which is known here: reading the
        # rows back would decode each event's JSON again for nothing.
        return {
            id_: occurrence.finished(outcome) for id_, (occurrence, outcome) in outcomes.items()
        }
    # Some were final already or unknown (or the driver cannot count): read them.
    return occurrences_by_id(conn, ids)


# One UPDATE run for many occurrences (an executemany): each row's outcome comes in as
# b_-prefixed parameters, named apart from the columns they set.
_FINISH_PENDING = (
    update(occurrences)
    .where(
        occurrences.c.id == bindparam("b_id"),
        occurrences.c.status == str(OccurrenceStatus.PENDING),
    )
    .values(
        {name: bindparam(f"b_{name}", type_=occurrences.c[name].type) for name in OUTCOME_COLUMNS}
    )
)


_CLAIM_PENDING = (
    update(occurrences)
    .where(
        occurrences.c.trigger_id == bindparam("b_trigger_id"),
        occurrences.c.event_id == bindparam("b_event_id"),
        occurrences.c.status == str(OccurrenceStatus.PENDING),
    )
    .values(claimed_by=bindparam("b_claimed_by"))
)


def _outcome_params(outcome: Outcome) -> dict[str, Any]:
    return {f"b_{name}": value for name, value in outcome_values(outcome).items()}
