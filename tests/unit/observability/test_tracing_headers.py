"""Reading trace context from Kafka headers, and the OTEL_* switch that turns tracing on."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from trigger_daemon.core.occurrences import Occurrence, OccurrenceStatus
from trigger_daemon.core.triggers import Trigger
from trigger_daemon.engine.calls import CallResult
from trigger_daemon.observability.tracing import Tracing, extract_context, tracing_wanted
from trigger_daemon.ports import SourceRecord

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"
OTHER_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def record(*headers: tuple[str, bytes]) -> SourceRecord:
    return SourceRecord("ledger", 3, 42, None, b"{}", headers=headers)


def otel_context(fields: object) -> tuple[str, bytes]:
    return ("otel-context", json.dumps(fields).encode())


def traceparent_of(headers: tuple[tuple[str, bytes], ...]) -> str | None:
    """The incoming span a record's headers name, as a traceparent, or None."""
    context = extract_context(record(*headers))
    if context is None:
        return None
    span = trace.get_current_span(context).get_span_context()
    assert span.is_remote
    flags = "01" if span.trace_flags.sampled else "00"
    return f"00-{span.trace_id:032x}-{span.span_id:016x}-{flags}"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param((otel_context({"traceparent": TRACEPARENT}),), TRACEPARENT, id="otel-context"),
        pytest.param((("traceparent", TRACEPARENT.encode()),), TRACEPARENT, id="plain-header"),
        pytest.param(
            (
                otel_context({"traceparent": TRACEPARENT}),
                ("traceparent", OTHER_TRACEPARENT.encode()),
            ),
            TRACEPARENT,
            id="otel-context-wins",
        ),
        pytest.param(
            (otel_context({"Traceparent": TRACEPARENT}),), TRACEPARENT, id="key-case-ignored"
        ),
        pytest.param((), None, id="no-headers"),
        pytest.param((("_watermill_message_uuid", b"x"),), None, id="unrelated-headers"),
        pytest.param((("otel-context", b""),), None, id="empty-otel-context"),
        pytest.param((("traceparent", b"garbage"),), None, id="malformed-plain-header"),
    ],
)
def test_trace_context_is_read_from_otel_context_then_traceparent(
    headers: tuple[tuple[str, bytes], ...], expected: str | None
) -> None:
    assert traceparent_of(headers) == expected


MALFORMED_OTEL_CONTEXTS = [
    pytest.param(b"{not json", id="not-json"),
    pytest.param(b"\xff\xfe{}", id="not-utf8"),
    pytest.param(b"[1, 2]", id="not-an-object"),
    pytest.param(b'"00-..."', id="a-string"),
    pytest.param(b"{}", id="no-traceparent"),
    pytest.param(b'{"traceparent": 7}', id="traceparent-not-a-string"),
    pytest.param(b'{"traceparent": "00-xyz-abc-01"}', id="traceparent-malformed"),
    pytest.param(
        b'{"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"}',
        id="all-zero-trace-id",
    ),
    pytest.param(b"[" * 100_000, id="absurdly-nested"),
]


@pytest.mark.parametrize("value", MALFORMED_OTEL_CONTEXTS)
def test_malformed_otel_context_is_ignored_and_logged_at_debug(value: bytes) -> None:
    with structlog.testing.capture_logs() as logs:
        assert traceparent_of((("otel-context", value),)) is None
    [line] = logs
    assert line["event"] == "tracing.context_ignored"
    assert line["log_level"] == "debug"
    assert (line["topic"], line["partition"], line["offset"]) == ("ledger", 3, 42)


@pytest.mark.parametrize("value", MALFORMED_OTEL_CONTEXTS)
def test_malformed_otel_context_falls_back_to_a_plain_traceparent(value: bytes) -> None:
    headers = (("otel-context", value), ("traceparent", TRACEPARENT.encode()))
    assert traceparent_of(headers) == TRACEPARENT


def test_tracestate_is_kept() -> None:
    context = extract_context(
        record(otel_context({"traceparent": TRACEPARENT, "tracestate": "vendor=opaque"}))
    )
    assert context is not None
    span = trace.get_current_span(context).get_span_context()
    assert span.trace_state.get("vendor") == "opaque"


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "trigger-daemon"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console, otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
        ({"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}, True),
    ],
)
def test_tracing_is_off_unless_the_otel_variables_ask_for_otlp(
    environ: dict[str, str], wanted: bool
) -> None:
    assert tracing_wanted(environ) is wanted


async def test_tracing_from_env_is_on_only_when_asked_and_closes() -> None:
    assert not Tracing.from_env({}).enabled
    tracing = Tracing.from_env({"OTEL_TRACES_EXPORTER": "otlp"})
    assert tracing.enabled
    await tracing.aclose()
    await tracing.aclose()  # safe twice


TRIGGER = Trigger.model_validate(
    {
        "id": "trigger-1",
        "name": "t",
        "event": "SAVED_PAYMENT",
        "workflowID": "settle",
        "createdAt": "2024-01-01T00:00:00Z",
    }
)


def occurrence() -> Occurrence:
    return Occurrence(
        id="occ-1",
        trigger_id=TRIGGER.id,
        event_id="SAVED_PAYMENT:1",
        date=datetime(2024, 1, 1, tzinfo=UTC),
        event={"type": "SAVED_PAYMENT", "payload": {}},
        status=OccurrenceStatus.PENDING,
    )


def test_untraced_call_passes_the_records_traceparent_on_and_reads_no_header() -> None:
    off = Tracing()
    malformed = record(("otel-context", b"{not json"))
    with (
        structlog.testing.capture_logs() as logs,
        off.event_span(malformed, event_type="SAVED_PAYMENT", event_id="e", matched=1),
        off.call_span(TRIGGER, occurrence(), TRACEPARENT) as call,
    ):
        assert call.traceparent == TRACEPARENT
        call.finish(CallResult(attempts=1, error="boom"))
    assert logs == []  # the header was never parsed
    assert not off.enabled


def test_traced_call_sends_its_own_traceparent_under_the_event_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    on = Tracing(provider)
    incoming = record(otel_context({"traceparent": TRACEPARENT}))
    with (
        on.event_span(incoming, event_type="SAVED_PAYMENT", event_id="e", matched=1),
        on.call_span(TRIGGER, occurrence(), OTHER_TRACEPARENT) as call,
    ):
        call.finish(CallResult(attempts=2, instance={"id": "wf-1"}))
    call_span, event_span = exporter.get_finished_spans()
    assert call.traceparent == f"00-{TRACE_ID}-{call_span.context.span_id:016x}-01"
    assert call_span.parent is not None
    assert call_span.parent.span_id == event_span.context.span_id
    assert call_span.attributes == {
        "trigger_daemon.workflow.id": "settle",
        "trigger_daemon.trigger.id": TRIGGER.id,
        "trigger_daemon.occurrence.id": "occ-1",
        "trigger_daemon.call.attempts": 2,
        "trigger_daemon.call.outcome": "succeeded",
    }
    provider.shutdown()
