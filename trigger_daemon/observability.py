"""Logs and metrics: structlog configured once, and the Prometheus metric families.

Log lines carry stable event names (`occurrence.succeeded`, `record.dead_lettered`, ...) and
context fields (event_id, trigger_id, topic, partition, offset, ...). Metric labels never
hold event ids, so cardinality stays bounded.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Iterable
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram

from trigger_daemon.redaction import Redactor

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(level: str = "info", fmt: str = "json", secrets: Iterable[str] = ()) -> None:
    """One structlog chain for the whole process; standard-library loggers (uvicorn,
    aiokafka) go through the same renderer so the output is one format. Both chains redact
    `secrets` and URL passwords just before rendering (see redaction)."""
    redact = Redactor(secrets)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, redact, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact,
                renderer,
            ],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries are chatty at info; their warnings still show.
    root.setLevel(max(_LEVELS[level], logging.WARNING))


EVENTS_CONSUMED = Counter("trigger_daemon_events_consumed", "Records read from Kafka.", ["topic"])
EVENTS_MATCHED = Counter(
    "trigger_daemon_events_matched", "Events that matched at least one trigger.", ["event_type"]
)
DEAD_LETTERS = Counter(
    "trigger_daemon_dead_letters", "Records sent to the dead-letter topic.", ["reason"]
)
FILTER_ERRORS = Counter(
    "trigger_daemon_filter_errors", "Filters that raised while evaluated.", ["trigger_id"]
)
WORKFLOW_CALLS = Counter(
    "trigger_daemon_workflow_calls", "runWorkflow calls by final outcome.", ["outcome"]
)
WORKFLOW_CALL_DURATION = Histogram(
    "trigger_daemon_workflow_call_duration_seconds",
    "Duration of runWorkflow calls, retries included.",
)
OCCURRENCES = Counter(
    "trigger_daemon_occurrences", "Occurrences that reached a final status.", ["status"]
)
IN_FLIGHT = Gauge("trigger_daemon_in_flight", "Records being handled now.")
CONSUMER_LAG = Gauge(
    "trigger_daemon_consumer_lag", "Records behind the high-water mark.", ["topic", "partition"]
)


@functools.cache
def series(family: Counter, *labels: str) -> Counter:
    """`family.labels(*labels)`, looked up once per label set (labels() costs about 2 us, and
    matched events count three series each). For counters whose label values are bounded
    (statuses, outcomes, matched event types) and whose series are never removed."""
    return family.labels(*labels)
