"""The SQLite driver-level occurrence writes (sqlite_writes.py) store exactly what SQLAlchemy's
statements store: the same occurrences written both ways, into two migrated SQLite files,
leave identical rows, value for value and type for type."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from trigger_daemon.adapters.store import open_store, sqlite_writes
from trigger_daemon.adapters.store.dialects import insert_if_absent
from trigger_daemon.adapters.store.engine import compact_json
from trigger_daemon.adapters.store.occurrence_writes import _FINISH_PENDING
from trigger_daemon.adapters.store.rows import outcome_values, pending_values
from trigger_daemon.adapters.store.schema import occurrences
from trigger_daemon.core.occurrences import NewOccurrence, Outcome

PLUS_TWO = timezone(timedelta(hours=2))
EVENTS: list[dict[str, Any]] = [
    {"type": "COMMITTED_TRANSACTIONS", "payload": {"amount": 12_500, "asset": "USD/2"}},
    {"type": "SAVED_PAYMENT", "payload": {"ref": "é ✓ 支払い", "amount": 2**70, "ok": None}},
    {"type": "SAVED_ACCOUNT", "payload": {"nested": [[1.5, -0.0], {"x": True}], "s": 'a"b\\c'}},
]
DATES = [
    datetime(2024, 5, 1, 12, 0, tzinfo=UTC),  # no microseconds
    datetime(2024, 5, 1, 14, 0, 0, 123, tzinfo=PLUS_TWO),  # another zone
    datetime(2024, 5, 1, 12, 0, 0, 999_999),  # naive: taken as UTC
]
UPDATED = datetime(2024, 5, 2, 8, 30, 15, 500_000, tzinfo=UTC)
OUTCOMES = [
    Outcome.succeeded({"id": "wi-1", "createdAt": "2024-05-01T12:00:00Z"}, 2, {"a": "1"}),
    Outcome.failed("HTTP 404: no such workflow", 1, {"b": "ü"}),
]

Written = tuple[dict[str, int], int]  # the seq of each id inserted, how many rows finished


def pending_rows() -> list[dict[str, Any]]:
    rows = [
        pending_values(NewOccurrence(f"trigger-{n}", f"event-{n}", event, date, claimant), UPDATED)
        for n, (event, date, claimant) in enumerate(
            zip(EVENTS, DATES, ["replica-a", None, "replica-b"], strict=True)
        )
    ]
    for n, row in enumerate(rows):
        row["id"] = f"occurrence-{n}"  # the same ids in both files
    return rows


def finished_values(outcome: Outcome) -> dict[str, Any]:
    return {**outcome_values(outcome), "updated_at": UPDATED}


def write_with_sqlalchemy(conn: Connection, rows: list[dict[str, Any]]) -> Written:
    """As occurrence_writes.py writes on PostgreSQL (and wrote on SQLite before)."""
    insert = insert_if_absent(conn, occurrences).returning(occurrences.c.id, occurrences.c.seq)
    seqs = {id_: seq for id_, seq in conn.execute(insert, rows)}
    finished = [
        {"b_id": row["id"], **{f"b_{k}": v for k, v in finished_values(outcome).items()}}
        for row, outcome in zip(rows, OUTCOMES, strict=False)  # the last row stays pending
    ]
    return seqs, conn.execute(_FINISH_PENDING, finished).rowcount


def write_with_the_driver(conn: Connection, rows: list[dict[str, Any]]) -> Written:
    seqs = sqlite_writes.insert_pending(conn, rows)
    finished = [
        (row["id"], finished_values(outcome)) for row, outcome in zip(rows, OUTCOMES, strict=False)
    ]
    return seqs, sqlite_writes.finish_pending(conn, finished)


def stored(path: Path) -> list[tuple[Any, ...]]:
    """Every column of every occurrence with its SQLite storage class."""
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(occurrences)")]
        selected = ", ".join(f"{column}, typeof({column})" for column in columns)
        return db.execute(f"SELECT {selected} FROM occurrences ORDER BY seq").fetchall()


async def migrated(path: Path) -> str:
    url = f"sqlite:///{path}"
    store = await open_store(url)
    await store.close()
    return url


async def test_rows_written_through_the_driver_equal_those_sqlalchemy_writes(
    tmp_path: Path,
) -> None:
    results: dict[str, tuple[Written, Written, list[tuple[Any, ...]]]] = {}
    for name, write in (("sqlalchemy", write_with_sqlalchemy), ("driver", write_with_the_driver)):
        path = tmp_path / f"{name}.db"
        engine = create_engine(await migrated(path), json_serializer=compact_json)
        with engine.begin() as conn:
            first = write(conn, pending_rows())
            again = write(conn, pending_rows())  # the same pairs: none inserted, none finished
        engine.dispose()
        results[name] = (first, again, stored(path))

    assert results["driver"] == results["sqlalchemy"]
    first, again, rows = results["driver"]
    assert first == ({"occurrence-0": 1, "occurrence-1": 2, "occurrence-2": 3}, 2)
    assert again == ({}, 0)
    statuses = [{"succeeded", "failed", "pending"} & set(row) for row in rows]
    assert statuses == [{"succeeded"}, {"failed"}, {"pending"}]


async def test_a_batch_larger_than_one_statement_inserts_every_row(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    engine = create_engine(await migrated(path), json_serializer=compact_json)
    rows = [
        pending_values(NewOccurrence("t", f"e-{n}", EVENTS[0], DATES[0]), UPDATED)
        for n in range(1_234)
    ]
    with engine.begin() as conn:
        seqs = sqlite_writes.insert_pending(conn, rows)
    engine.dispose()

    assert sorted(seqs) == sorted(row["id"] for row in rows)
    assert sorted(seqs.values()) == list(range(1, 1_235))
