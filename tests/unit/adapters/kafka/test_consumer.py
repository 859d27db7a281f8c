"""The pipeline's view of a record the consumer fetched."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from trigger_daemon.adapters.kafka.consumer import to_source_record
from trigger_daemon.ports import SourceRecord


def consumed(headers: list[tuple[str, bytes | None]]) -> ConsumerRecord:
    return ConsumerRecord(
        topic="ledger",
        partition=2,
        offset=41,
        timestamp=1_700_000_000_000,
        timestamp_type=0,
        key=b"tx-1",
        value=b"{}",
        checksum=None,
        serialized_key_size=4,
        serialized_value_size=2,
        headers=headers,
    )


def test_a_consumed_record_keeps_its_place_key_value_headers_and_timestamp() -> None:
    record = to_source_record(consumed([("traceparent", b"00-ab"), ("empty", None)]))
    assert record == SourceRecord(
        topic="ledger",
        partition=2,
        offset=41,
        key=b"tx-1",
        value=b"{}",
        headers=(("traceparent", b"00-ab"), ("empty", b"")),
        timestamp_ms=1_700_000_000_000,
    )


def test_a_record_without_headers_has_an_empty_tuple() -> None:
    assert to_source_record(consumed([])).headers == ()
