"""Decode a Kafka record's value into an Envelope, or say why it is unprocessable; event identity.

Amounts are JSON integers that may exceed 2**53: the standard `json` module parses
them as exact Python ints, and nothing here converts them to float.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from trigger_daemon.core import json_input
from trigger_daemon.core.header_values import header_safe

WATERMILL_UUID_HEADER = "_watermill_message_uuid"


class UnprocessableReason(StrEnum):
    """Why a record cannot be handled; carried in the dead-letter header."""

    NOT_UTF8 = "not-utf8"
    NOT_JSON = "not-json"
    NOT_AN_OBJECT = "not-an-object"
    MISSING_TYPE = "missing-type"
    PAYLOAD_NOT_AN_OBJECT = "payload-not-an-object"


@dataclass(frozen=True, slots=True)
class Unprocessable:
    reason: UnprocessableReason
    detail: str


@dataclass(slots=True)
class Envelope:
    """A Formance event message. `raw` is the whole decoded object, as received.

    Not frozen, though nothing changes it: one is built per record, and a frozen dataclass
    takes three times as long to build."""

    type: str
    payload: dict[str, Any]
    raw: dict[str, Any]

    @property
    def version(self) -> str | None:
        return _optional_string(self.raw, "version")

    @property
    def idempotency_key(self) -> str | None:
        return _optional_string(self.raw, "idempotency_key") or _optional_string(
            self.raw, "idempotencyKey"
        )


def decode(value: bytes | None) -> Envelope | Unprocessable:
    """Turn a record value into an Envelope, or an Unprocessable naming what is wrong."""
    if value is None:
        return Unprocessable(UnprocessableReason.NOT_JSON, "the record has no value (tombstone)")
    try:
        # Strict: what later stages cannot store is refused.
        document = json_input.loads_utf8(value)
    except UnicodeDecodeError as exc:
        return Unprocessable(UnprocessableReason.NOT_UTF8, f"invalid UTF-8 at byte {exc.start}")
    except json_input.JSONInputError as exc:
        return Unprocessable(UnprocessableReason.NOT_JSON, f"invalid JSON: {exc}")
    return envelope_from_object(document)


def envelope_from_object(document: object) -> Envelope | Unprocessable:
    """Check the shape of an already-parsed event (used by decode and by the test endpoint)."""
    if not isinstance(document, dict):
        kind = type(document).__name__
        return Unprocessable(UnprocessableReason.NOT_AN_OBJECT, f"the event is a JSON {kind}")
    event_type = document.get("type")
    if not isinstance(event_type, str) or not event_type:
        return Unprocessable(UnprocessableReason.MISSING_TYPE, "`type` is missing or not a string")
    payload = document.get("payload")
    if not isinstance(payload, dict):
        return Unprocessable(
            UnprocessableReason.PAYLOAD_NOT_AN_OBJECT, "`payload` is missing or not an object"
        )
    return Envelope(event_type, payload, document)


# Far beyond any real idempotency key or uuid; with the trigger id and the event type, the
# store's index entry stays under PostgreSQL's limit.
MAX_KEY_BYTES = 2048


def event_id(
    envelope: Envelope,
    headers: Mapping[str, bytes],
    topic: str,
    partition: int,
    offset: int,
) -> str:
    """Identity that makes redelivery safe: idempotency key, then watermill uuid, then offset.

    A watermill header holding a control character is no uuid, and as part of the call's
    Idempotency-Key it could not be sent (a NUL could not even be stored): it is ignored.
    A key or uuid longer than MAX_KEY_BYTES stands as its digest (`_bounded`)."""
    key = envelope.idempotency_key
    if key:
        return f"{envelope.type}:{_bounded(key)}"
    watermill = headers.get(WATERMILL_UUID_HEADER)
    if watermill:
        decoded = watermill.decode("utf-8", errors="replace").strip()
        if decoded and header_safe(decoded):
            return _bounded(decoded)
    return f"{topic}:{partition}:{offset}"


def _bounded(key: str) -> str:
    """`key`, or `sha256:<hex digest>` when it is longer than MAX_KEY_BYTES: the same for
    every delivery of the event, and short enough for the store to index and a header to
    carry. PostgreSQL refuses an index entry over 2,704 bytes, so the occurrence of an event
    with a longer key could not be written, and its record was retried for ever."""
    encoded = key.encode("utf-8")
    if len(encoded) <= MAX_KEY_BYTES:
        return key
    return "sha256:" + hashlib.sha256(encoded).hexdigest()


def _optional_string(document: Mapping[str, Any], key: str) -> str | None:
    value = document.get(key)
    return value if isinstance(value, str) else None


__all__ = [
    "MAX_KEY_BYTES",
    "WATERMILL_UUID_HEADER",
    "Envelope",
    "Unprocessable",
    "UnprocessableReason",
    "decode",
    "envelope_from_object",
    "event_id",
]
