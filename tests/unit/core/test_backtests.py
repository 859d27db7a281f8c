"""The backtest tally: each record counted as the live pipeline would handle it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from trigger_daemon.core.backtests import (
    Backtest,
    BacktestStatus,
    BacktestTally,
    from_document,
    to_document,
)
from trigger_daemon.core.triggers import parse_definition
from trigger_daemon.ports import SourceRecord
from trigger_daemon.triggers.catalog import TriggerCatalog

TRIGGER = {
    "event": "SAVED_PAYMENT",
    "version": "v3",
    "filter": "abs(event.amount) > `100`",
    "workflowID": "settle",
    "vars": {"payment": "event.id", "note": "event.note"},
}
STAMP = 1_714_521_600_000  # 2024-05-01T00:00:00Z


def payment(amount: Any, note: str | None = "n", version: str = "v3", **envelope: Any) -> bytes:
    payload = {"id": f"pay-{amount}", "amount": amount}
    if note is not None:
        payload["note"] = note
    event = {"type": "SAVED_PAYMENT", "version": version, "payload": payload, **envelope}
    return json.dumps(event).encode()


def record(
    value: bytes, offset: int = 0, headers: tuple[tuple[str, bytes], ...] = ()
) -> SourceRecord:
    return SourceRecord("payments", 3, offset, None, value, headers, STAMP + offset)


def tally(samples: int = 20) -> BacktestTally:
    return BacktestTally(TriggerCatalog.compile_definition(parse_definition(TRIGGER)), samples)


def test_each_outcome_of_a_live_run_has_its_count() -> None:
    counting = tally()
    values = [
        payment(500),  # matched
        payment(5),  # filtered out
        payment("many"),  # the filter raises: a filter error, no match
        payment(900, note=None),  # matched, its var fails
        payment(700, version="v2"),  # another version
        json.dumps({"type": "OTHER", "payload": {}}).encode(),  # another type
        b"{not json",  # dead-lettered live
        json.dumps({"payload": {}}).encode(),  # no type: dead-lettered live
    ]
    identities = [counting.count(record(value, offset)) for offset, value in enumerate(values)]

    assert identities == ["payments:3:0", None, None, "payments:3:3", None, None, None, None]
    assert (counting.scanned, counting.matched) == (8, 2)
    assert (counting.filter_errors, counting.var_errors, counting.unprocessable) == (1, 1, 2)


def test_samples_show_vars_or_the_error_a_live_run_would_record_up_to_the_limit() -> None:
    counting = tally(samples=2)
    for offset, value in enumerate([payment(500), payment(900, note=None), payment(800)]):
        counting.count(record(value, offset))

    first, second = counting.samples
    assert counting.matched == 3
    assert first.vars == {"payment": "pay-500", "note": "n"}
    assert first.error is None
    assert (first.topic, first.partition, first.offset) == ("payments", 3, 0)
    assert first.date == datetime(2024, 5, 1, tzinfo=UTC)
    assert second.vars is None
    assert str(second.error).startswith("var 'note' (event.note)")


def test_event_identity_is_the_live_one_key_then_watermill_header_then_offset() -> None:
    counting = tally()
    keyed = counting.count(record(payment(500, idempotency_key="k-1")))
    headed = counting.count(record(payment(500), 1, (("_watermill_message_uuid", b"uuid-9"),)))
    bare = counting.count(record(payment(500), 2))

    assert (keyed, headed, bare) == ("SAVED_PAYMENT:k-1", "uuid-9", "payments:3:2")


def test_a_snapshot_carries_the_counts_and_the_document_round_trips() -> None:
    counting = tally()
    counting.count(record(payment(500, note=None)))
    counting.read, counting.total, counting.already_occurred = 10, 40, 1
    started = Backtest(
        id="b-1",
        status=BacktestStatus.RUNNING,
        trigger_id="t-1",
        since=datetime(2024, 5, 1, tzinfo=UTC),
        until=datetime(2024, 5, 2, tzinfo=UTC),
        topics=("payments",),
        started_at=datetime(2024, 5, 3, tzinfo=UTC),
    )
    snapshot = counting.snapshot(started)
    document = to_document(snapshot)

    assert (snapshot.matched, snapshot.var_errors, snapshot.already_occurred) == (1, 1, 1)
    assert document["progress"] == {"read": 10, "total": 40}
    assert document["since"] == "2024-05-01T00:00:00Z"
    assert not {"finishedAt", "error"} & set(document)
    assert "vars" not in document["samples"][0]
    assert from_document(json.loads(json.dumps(document))) == snapshot
