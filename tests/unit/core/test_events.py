"""Decoding records into envelopes, and event identity."""

import hashlib
import json

import pytest

from trigger_daemon.core.events import (
    MAX_KEY_BYTES,
    Envelope,
    Unprocessable,
    UnprocessableReason,
    decode,
    event_id,
)

BIG = 2**70 + 1


def envelope(**fields: object) -> Envelope:
    decoded = decode(json.dumps({"type": "SAVED_PAYMENT", "payload": {}, **fields}).encode())
    assert isinstance(decoded, Envelope)
    return decoded


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, UnprocessableReason.NOT_JSON),
        (b"\xff\xfe{}", UnprocessableReason.NOT_UTF8),
        (b"{not json", UnprocessableReason.NOT_JSON),
        (b"", UnprocessableReason.NOT_JSON),
        (b"[1, 2]", UnprocessableReason.NOT_AN_OBJECT),
        (b'"a string"', UnprocessableReason.NOT_AN_OBJECT),
        (b'{"payload": {}}', UnprocessableReason.MISSING_TYPE),
        (b'{"type": 7, "payload": {}}', UnprocessableReason.MISSING_TYPE),
        (b'{"type": "", "payload": {}}', UnprocessableReason.MISSING_TYPE),
        (b'{"type": "X"}', UnprocessableReason.PAYLOAD_NOT_AN_OBJECT),
        (b'{"type": "X", "payload": [1]}', UnprocessableReason.PAYLOAD_NOT_AN_OBJECT),
        (b'{"type": "X", "payload": null}', UnprocessableReason.PAYLOAD_NOT_AN_OBJECT),
    ],
)
def test_bad_records_are_unprocessable_with_a_reason(value: bytes | None, reason: str) -> None:
    decoded = decode(value)
    assert isinstance(decoded, Unprocessable)
    assert decoded.reason == reason
    assert decoded.detail


def test_amounts_beyond_2_pow_53_decode_exactly() -> None:
    raw = b'{"type": "SAVED_PAYMENT", "payload": {"amount": %d}}' % BIG
    decoded = decode(raw)
    assert isinstance(decoded, Envelope)
    assert decoded.payload["amount"] == BIG
    assert type(decoded.payload["amount"]) is int


def test_envelope_exposes_optional_fields_only_when_strings() -> None:
    assert envelope(version="v2").version == "v2"
    assert envelope(version=2).version is None
    assert envelope().version is None


def test_identity_prefers_the_idempotency_key() -> None:
    event = envelope(idempotency_key="k-1")
    headers = {"_watermill_message_uuid": b"uuid-1"}
    assert event_id(event, headers, "ledger", 0, 5) == "SAVED_PAYMENT:k-1"


def test_identity_accepts_the_camel_case_idempotency_key() -> None:
    assert event_id(envelope(idempotencyKey="k-2"), {}, "t", 0, 0) == "SAVED_PAYMENT:k-2"


def test_identity_falls_back_to_the_watermill_uuid_header() -> None:
    headers = {"_watermill_message_uuid": b"3f2c-uuid"}
    assert event_id(envelope(idempotency_key=""), headers, "ledger", 1, 9) == "3f2c-uuid"


def test_identity_falls_back_to_topic_partition_offset() -> None:
    assert event_id(envelope(), {}, "ledger", 2, 41) == "ledger:2:41"


@pytest.mark.parametrize(
    "uuid", [b"3f2c\x00uuid", b"3f2c\nuuid", b"\x01"], ids=["nul", "lf", "soh"]
)
def test_a_watermill_header_holding_a_control_character_is_no_identity(uuid: bytes) -> None:
    # As part of the Idempotency-Key it could not be sent, and a NUL could not be stored.
    headers = {"_watermill_message_uuid": uuid}
    assert event_id(envelope(), headers, "ledger", 2, 41) == "ledger:2:41"


def test_a_key_longer_than_the_store_can_index_stands_as_its_digest() -> None:
    long_key = "k" * 1024 + "é" * 600  # 2,224 bytes of UTF-8
    identity = event_id(envelope(idempotency_key=long_key), {}, "ledger", 0, 5)
    digest = hashlib.sha256(long_key.encode()).hexdigest()
    assert identity == f"SAVED_PAYMENT:sha256:{digest}"
    # The same for every delivery, apart for any other key.
    assert event_id(envelope(idempotency_key=long_key), {}, "ledger", 3, 9) == identity
    other = event_id(envelope(idempotency_key=long_key + "x"), {}, "ledger", 0, 5)
    assert other != identity


def test_a_key_within_the_limit_is_kept_as_it_is() -> None:
    key = "é" * (MAX_KEY_BYTES // 2)  # exactly MAX_KEY_BYTES of UTF-8
    assert event_id(envelope(idempotency_key=key), {}, "ledger", 0, 5) == f"SAVED_PAYMENT:{key}"


def test_a_watermill_uuid_longer_than_the_limit_stands_as_its_digest() -> None:
    uuid = b"u" * (MAX_KEY_BYTES + 1)
    identity = event_id(envelope(), {"_watermill_message_uuid": uuid}, "ledger", 2, 41)
    assert identity == "sha256:" + hashlib.sha256(uuid).hexdigest()
