"""Tracing end to end in-process: the daemon on the real broker, the stub API over HTTP and
SQLite, with its spans caught by an in-memory exporter instead of sent over OTLP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from trigger_daemon.app import Daemon
from trigger_daemon.core.triggers import yaml_trigger_id
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.stub_orchestration import StubOrchestration
from trigger_daemon.observability.tracing import Tracing

from .conftest import daemon_settings, in_process, produce

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PUBLISHER_SPAN_ID = "00f067aa0ba902b7"
OTEL_CONTEXT = json.dumps({"traceparent": f"00-{TRACE_ID}-{PUBLISHER_SPAN_ID}-01"}).encode()

TRIGGER = {
    "name": "payment-succeeded",
    "event": "SAVED_PAYMENT",
    "filter": "event.status == 'SUCCEEDED'",
    "workflowID": "settle",
    "vars": {"payment": "event.id"},
}

RunDaemon = Callable[[], Awaitable[None]]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    caught = InMemorySpanExporter()
    yield caught
    caught.clear()


@pytest.fixture
def run_daemon(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    tmp_path: Path,
    exporter: InMemorySpanExporter,
) -> Iterator[RunDaemon]:
    """Run the daemon, traced into `exporter`, until every record of `topic` is handled."""
    # The test's own provider, injected: OpenTelemetry's global one is never touched.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    async def run() -> None:
        settings = daemon_settings(
            broker,
            topic,
            stub.url,
            f"sqlite:///{tmp_path}/store.db",
            orchestration={"api_version": "v2", "retry": {"max_attempts": 1}},
            triggers=[TRIGGER],
        )
        daemon = Daemon(in_process(settings), tracing=Tracing(provider))
        await asyncio.wait_for(daemon.run(asyncio.Event(), until_idle=True), timeout=60)

    yield run
    provider.shutdown()


def payment(status: str = "SUCCEEDED") -> bytes:
    return events.encode(events.saved_payment(status, 1000))


def span_named(spans: tuple[ReadableSpan, ...], prefix: str) -> ReadableSpan:
    [span] = [s for s in spans if s.name.startswith(prefix)]
    return span


async def test_event_with_otel_context_continues_its_trace_up_to_the_orchestration_api(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    exporter: InMemorySpanExporter,
    run_daemon: RunDaemon,
) -> None:
    await produce(
        broker.bootstrap_servers, topic, [payment()], headers=[("otel-context", OTEL_CONTEXT)]
    )
    await run_daemon()

    spans = exporter.get_finished_spans()
    assert {f"{s.context.trace_id:032x}" for s in spans} == {TRACE_ID}
    event = span_named(spans, "trigger-daemon handle SAVED_PAYMENT")
    call = span_named(spans, "runWorkflow settle")

    assert event.kind is SpanKind.CONSUMER
    assert event.parent is not None
    assert event.parent.is_remote
    assert f"{event.parent.span_id:016x}" == PUBLISHER_SPAN_ID
    assert event.attributes is not None
    assert event.attributes["messaging.system"] == "kafka"
    assert event.attributes["messaging.destination.name"] == topic
    assert event.attributes["messaging.destination.partition.id"] == "0"
    assert event.attributes["messaging.kafka.offset"] == 0
    assert event.attributes["trigger_daemon.event.type"] == "SAVED_PAYMENT"
    assert event.attributes["trigger_daemon.triggers.matched"] == 1

    assert call.kind is SpanKind.CLIENT
    assert call.parent is not None
    assert call.parent.span_id == event.context.span_id
    assert call.attributes is not None
    assert call.attributes["trigger_daemon.workflow.id"] == "settle"
    assert call.attributes["trigger_daemon.trigger.id"] == yaml_trigger_id("payment-succeeded")
    assert call.attributes["trigger_daemon.call.outcome"] == "succeeded"
    assert call.attributes["trigger_daemon.call.attempts"] == 1
    assert call.status.status_code is StatusCode.UNSET

    # The orchestration API continues the trace under the call span.
    [sent] = stub.calls
    assert sent.headers["traceparent"] == f"00-{TRACE_ID}-{call.context.span_id:016x}-01"


async def test_event_with_malformed_otel_context_still_runs_its_workflow_in_a_new_trace(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    exporter: InMemorySpanExporter,
    run_daemon: RunDaemon,
) -> None:
    await produce(
        broker.bootstrap_servers, topic, [payment()], headers=[("otel-context", b"{not json")]
    )
    await run_daemon()

    [sent] = stub.calls
    assert sent.answered_status == 201
    event = span_named(exporter.get_finished_spans(), "trigger-daemon handle")
    assert event.parent is None
    trace_id = f"{event.context.trace_id:032x}"
    assert trace_id != TRACE_ID
    assert sent.headers["traceparent"].startswith(f"00-{trace_id}-")


async def test_failed_call_span_has_error_status_and_outcome(
    broker: TansuBroker,
    stub: StubOrchestration,
    topic: str,
    exporter: InMemorySpanExporter,
    run_daemon: RunDaemon,
) -> None:
    stub.fail("settle", 400, error_message="unknown workflow")
    await produce(
        broker.bootstrap_servers, topic, [payment()], headers=[("otel-context", OTEL_CONTEXT)]
    )
    await run_daemon()

    call = span_named(exporter.get_finished_spans(), "runWorkflow settle")
    assert call.status.status_code is StatusCode.ERROR
    assert "unknown workflow" in (call.status.description or "")
    assert call.attributes is not None
    assert call.attributes["trigger_daemon.call.outcome"] == "permanent_error"
    assert call.attributes["http.response.status_code"] == 400
