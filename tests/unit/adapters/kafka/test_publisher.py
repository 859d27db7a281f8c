"""The headers a dead letter carries."""

from __future__ import annotations

from trigger_daemon.adapters.kafka import dead_letter_headers
from trigger_daemon.ports import DeadLetter, SourceRecord


def test_dead_letter_headers_say_why_and_where_then_carry_the_extra_ones() -> None:
    letter = DeadLetter(
        record=SourceRecord("ledger", 2, 41, None, b"x"),
        reason="workflow-call-failed",
        detail="HTTP 500",
        trigger_id="trg-1",
        extra_headers={"attempts": "5"},
    )
    assert dead_letter_headers(letter) == [
        ("dead-letter-reason", b"workflow-call-failed"),
        ("dead-letter-detail", b"HTTP 500"),
        ("dead-letter-source-topic", b"ledger"),
        ("dead-letter-source-partition", b"2"),
        ("dead-letter-source-offset", b"41"),
        ("dead-letter-trigger-id", b"trg-1"),
        ("dead-letter-attempts", b"5"),
    ]


def test_a_dead_letter_without_a_trigger_has_no_trigger_id_header() -> None:
    letter = DeadLetter(SourceRecord("ledger", 0, 0, None, b"x"), "payload-not-json", "at 0")
    names = [name for name, _ in dead_letter_headers(letter)]
    assert "dead-letter-trigger-id" not in names


def test_a_long_detail_is_cut_on_a_character_boundary_and_says_so() -> None:
    detail = "é" * 1_000_000  # an API's error message of 2 MB
    letter = DeadLetter(SourceRecord("ledger", 0, 7, None, b"x"), "workflow-call-failed", detail)
    header = dict(dead_letter_headers(letter))["dead-letter-detail"]
    assert len(header) <= 4096
    text = header.decode("utf-8")  # strict: no character cut in half
    assert text.startswith("éé")
    assert text.endswith("… (cut from 2000000 bytes)")


def test_a_detail_within_the_limit_is_kept_whole() -> None:
    detail = "x" * 4096
    letter = DeadLetter(SourceRecord("ledger", 0, 7, None, b"x"), "workflow-call-failed", detail)
    assert dict(dead_letter_headers(letter))["dead-letter-detail"] == detail.encode()
