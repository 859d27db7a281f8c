"""OpenTelemetry tracing: a span per handled event and per runWorkflow call, exported by OTLP.

Formance publishers put the trace context of an event in the Kafka header `otel-context`, a
JSON object holding `traceparent` (and maybe `tracestate`); a plain `traceparent` header is
accepted too. The event span continues that trace, the call span is its child, and the call
span's `traceparent` goes to the orchestration API, so the workflow joins the same trace.

Off by default. `Tracing.from_env()` turns it on when `OTEL_TRACES_EXPORTER` names `otlp`, or
when it is unset and `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
set; `OTEL_SDK_DISABLED=true` and `OTEL_TRACES_EXPORTER=none` keep it off. Everything else
(endpoint, headers, timeout, sampler, service name, batching) is read by the OpenTelemetry
SDK from its standard variables. Export runs in the batch processor's own thread, so a
missing collector costs dropped spans and a logged error, never a blocked event loop.

When off, no header is parsed and no span is built: an incoming plain `traceparent` is
passed to the API as it came. The daemon's tracer provider is
its own, never OpenTelemetry's global one, so tests can inject theirs (`Tracing(provider)`).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from types import TracebackType

import structlog
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from trigger_daemon import __version__
from trigger_daemon.core.occurrences import Occurrence
from trigger_daemon.core.triggers import Trigger
from trigger_daemon.engine.calls import CallResult
from trigger_daemon.ports import SourceRecord

log = structlog.get_logger(__name__)

OTEL_CONTEXT_HEADER = "otel-context"
TRACEPARENT_HEADER = "traceparent"
_SERVICE_NAME = "trigger-daemon"
_PROPAGATOR = TraceContextTextMapPropagator()
_CLOSE_SECONDS = 5.0
_NO_SPAN = nullcontext()


def tracing_wanted(environ: Mapping[str, str]) -> bool:
    """The on/off switch read from the standard OTEL_* variables (see the module docstring).

    Unlike the OpenTelemetry default (`otlp`), an unset OTEL_TRACES_EXPORTER means off unless
    an OTLP endpoint is configured: a daemon with no collector should not try to reach one.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return "otlp" in {name.strip() for name in exporters.split(",")}
    return any(
        environ.get(name, "").strip()
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def extract_context(record: SourceRecord) -> Context | None:
    """The trace context a record carries: `otel-context` first, else a plain `traceparent`
    header; None when it carries none that is valid. Never raises: a malformed header is
    logged at debug and the record is handled untraced (in a trace of its own)."""
    carrier = _otel_context_carrier(record)
    if carrier is not None:
        context = _valid_context(carrier)
        if context is not None:
            return context
        _malformed(record, f"{OTEL_CONTEXT_HEADER}: invalid traceparent")
    plain = record.header(TRACEPARENT_HEADER)
    if plain:
        context = _valid_context({TRACEPARENT_HEADER: plain.decode("ascii", "replace")})
        if context is not None:
            return context
        _malformed(record, f"{TRACEPARENT_HEADER}: invalid")
    return None


def _valid_context(carrier: dict[str, str]) -> Context | None:
    """The W3C TraceContext propagator's reading of `carrier`, if it names a valid span."""
    context = _PROPAGATOR.extract(carrier)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def _otel_context_carrier(record: SourceRecord) -> dict[str, str] | None:
    """The string fields of the `otel-context` JSON object, keys lowercased; None when the
    header is absent or unusable."""
    raw = record.header(OTEL_CONTEXT_HEADER)
    if not raw:
        return None
    try:
        fields = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, absurdly nested
        _malformed(record, f"not JSON: {exc}")
        return None
    if not isinstance(fields, dict):
        _malformed(record, "not a JSON object")
        return None
    carrier = {key.lower(): value for key, value in fields.items() if isinstance(value, str)}
    if TRACEPARENT_HEADER not in carrier:
        _malformed(record, "no traceparent string")
        return None
    return carrier


def _malformed(record: SourceRecord, reason: str) -> None:
    log.debug(
        "tracing.context_ignored",
        reason=reason,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
    )


@dataclass(slots=True)
class CallTrace:
    """The trace of one runWorkflow call: the `traceparent` to send, and the span (None when
    tracing is off) that `finish` completes with the call's result."""

    traceparent: str | None
    span: trace.Span | None = None

    def finish(self, result: CallResult) -> None:
        if self.span is None:
            return
        self.span.set_attribute("trigger_daemon.call.attempts", result.attempts)
        self.span.set_attribute("trigger_daemon.call.outcome", result.outcome)
        if result.status_code is not None:
            self.span.set_attribute("http.response.status_code", result.status_code)
        if not result.succeeded:
            self.span.set_status(trace.StatusCode.ERROR, result.error)


class Tracing:
    """The daemon's tracer, or none: `Tracing()` is off. Closing it flushes and stops the
    provider (`aclose`, or `async with`)."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self._provider = provider
        self._tracer = None if provider is None else provider.get_tracer(__name__, __version__)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Tracing:
        """On or off from the OTEL_* variables; when on, OTLP over HTTP in a batch.
        `environ` decides the switch only (tests pass one): the SDK reads os.environ."""
        environ = os.environ if environ is None else environ
        if not tracing_wanted(environ):
            return cls()
        # Imported here: the exporter (protobuf, requests) is only loaded when it is used.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider = TracerProvider(resource=_resource())  # sampler from OTEL_TRACES_SAMPLER
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        if protocol != "http/protobuf":
            log.warning("tracing.protocol_unsupported", protocol=protocol, using="http/protobuf")
        log.info("tracing.enabled", exporter="otlp", protocol="http/protobuf")
        return cls(provider)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    async def aclose(self) -> None:
        """Export what is buffered and stop, waiting at most a few seconds.

        With no collector the exporter retries until its timeout (OTEL_EXPORTER_OTLP_TIMEOUT,
        10 s by default); a stopping daemon should not wait that long, and its loop must not
        block. So the shutdown runs in a daemon thread that the process exit does not wait
        for either, and the spans still unsent after the deadline are lost."""
        provider, self._provider = self._provider, None
        if provider is None:
            return
        loop = asyncio.get_running_loop()
        closed = asyncio.Event()

        def shut_down() -> None:
            try:
                provider.shutdown()
            finally:
                with suppress(RuntimeError):  # the loop is gone: nobody waits
                    loop.call_soon_threadsafe(closed.set)

        threading.Thread(target=shut_down, name="otel-shutdown", daemon=True).start()
        try:
            await asyncio.wait_for(closed.wait(), _CLOSE_SECONDS)
        except TimeoutError:
            log.warning("tracing.flush_timed_out", seconds=_CLOSE_SECONDS)

    async def __aenter__(self) -> Tracing:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def event_span(
        self, record: SourceRecord, *, event_type: str, event_id: str, matched: int
    ) -> AbstractContextManager[object]:
        """The span of one matched event's work, current while the block runs, so the call
        spans started inside become its children. Off: a shared no-op, nothing parsed."""
        if self._tracer is None:
            return _NO_SPAN
        return self._tracer.start_as_current_span(
            f"trigger-daemon handle {event_type}",
            context=extract_context(record),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
                "trigger_daemon.event.type": event_type,
                "trigger_daemon.event.id": event_id,
                "trigger_daemon.triggers.matched": matched,
            },
        )

    def call_span(
        self, trigger: Trigger, occurrence: Occurrence, incoming_traceparent: str | None
    ) -> AbstractContextManager[CallTrace]:
        """The span of one runWorkflow call (retries included), a child of the current span.
        Off: no span, and `incoming_traceparent` (the record's own header) is passed on."""
        if self._tracer is None:
            return nullcontext(CallTrace(incoming_traceparent))
        return self._traced_call(self._tracer, trigger, occurrence)

    @staticmethod
    @contextmanager
    def _traced_call(
        tracer: trace.Tracer, trigger: Trigger, occurrence: Occurrence
    ) -> Iterator[CallTrace]:
        with tracer.start_as_current_span(
            f"runWorkflow {trigger.workflow_id}",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "trigger_daemon.workflow.id": trigger.workflow_id,
                "trigger_daemon.trigger.id": trigger.id,
                "trigger_daemon.occurrence.id": occurrence.id,
            },
        ) as span:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
            yield CallTrace(carrier.get(TRACEPARENT_HEADER), span)


def _resource() -> Resource:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES as the SDK reads them, with
    `trigger-daemon` instead of the SDK's `unknown_service` when neither names the service."""
    resource = Resource.create({"service.version": __version__})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: _SERVICE_NAME}))
    return resource
