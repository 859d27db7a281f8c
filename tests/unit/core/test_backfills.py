"""The backfill tally: counts become durable only with the position that covers them."""

from __future__ import annotations

from datetime import UTC, datetime

from trigger_daemon.core.backfills import (
    Backfill,
    BackfillStatus,
    BackfillTally,
    Counts,
    Outcome,
    positions_document,
    positions_of,
    to_document,
)

P0, P1 = ("ledger", 0), ("ledger", 1)


def test_counts_join_the_durable_totals_only_up_to_the_saved_position() -> None:
    tally = BackfillTally(Counts(scanned=10, matched=4, ran=3, skipped=1, read=12, total=50))
    for offset in range(5):
        tally.scanned(P0, offset, matched=offset % 2 == 0)
    tally.scanned(P1, 0, matched=True)
    tally.ended(P0, 2, Outcome.RAN)  # finished before offset 0 did
    tally.ended(P0, 0, Outcome.FAILED)
    tally.ended(P0, 4, Outcome.SKIPPED)
    tally.read += 6

    durable = tally.settle({P0: 3})  # offsets 0..2 of P0 finished; P1 not yet

    assert durable == Counts(scanned=13, matched=6, ran=5, skipped=1, failed=1, read=18, total=50)
    # Everything so far, durable or not, is what the API shows while it runs.
    assert tally.current() == Counts(
        scanned=16, matched=8, ran=5, skipped=2, failed=1, read=18, total=50
    )
    assert tally.settle({P0: 5, P1: 1}) == tally.current()


def test_a_settled_count_is_never_counted_twice() -> None:
    tally = BackfillTally()
    tally.scanned(P0, 7, matched=True)
    tally.ended(P0, 7, Outcome.RAN)
    tally.settle({P0: 8})
    assert tally.settle({P0: 8}) == Counts(scanned=1, matched=1, ran=1)


def test_positions_survive_their_json_form() -> None:
    positions = {("payments", 3): 7, ("ledger", 0): 42}
    document = positions_document(positions)
    assert document == [["ledger", 0, 42], ["payments", 3, 7]]
    assert positions_of(document) == positions
    assert positions_of(None) == {}


def test_the_api_document_names_progress_and_leaves_absent_fields_out() -> None:
    moment = datetime(2024, 5, 1, 12, tzinfo=UTC)
    backfill = Backfill(
        id="b",
        trigger_id="t",
        status=BackfillStatus.RUNNING,
        since=moment,
        until=moment,
        topics=("ledger",),
        started_at=moment,
        counts=Counts(scanned=3, read=5, total=4),
        owner="host:8081",
    )
    document = to_document(backfill)
    assert document["progress"] == {"read": 5, "total": 5}  # never below what was read
    assert document["since"] == "2024-05-01T12:00:00Z"
    assert document["owner"] == "host:8081"
    assert "finishedAt" not in document
    assert "error" not in document
