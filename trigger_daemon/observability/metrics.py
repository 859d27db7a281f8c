"""The Prometheus metric families. Labels never hold event ids, so cardinality stays bounded."""

from __future__ import annotations

import functools

from prometheus_client import Counter, Gauge, Histogram

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
INTERPRETED_EXPRESSIONS = Counter(
    "trigger_daemon_interpreted_expressions",
    "Trigger filters and vars compiled for the interpreter (the compiler could not take them).",
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
THROTTLED_SECONDS = Counter(
    "trigger_daemon_throttled_seconds",
    "Time runWorkflow requests waited for a rate limit or a concurrency cap.",
    ["trigger_id"],
)
TRIGGER_CALLS_IN_FLIGHT = Gauge(
    "trigger_daemon_trigger_calls_in_flight",
    "runWorkflow requests on their way now.",
    ["trigger_id"],
)
FLOW_LIMIT = Gauge(
    "trigger_daemon_flow_limit",
    "A trigger's limit in force (0: none): calls_per_second, burst, max_concurrency.",
    ["trigger_id", "limit"],
)
LOOP_LAG = Histogram(
    "trigger_daemon_event_loop_lag_seconds",
    "How much later than asked the event loop woke a sleeper (sampled every 0.1 s).",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
LONGEST_LOOP_LAG = Gauge(
    "trigger_daemon_event_loop_longest_lag_seconds",
    "The longest event loop lag seen since the daemon started.",
)


@functools.cache
def series(family: Counter, *labels: str) -> Counter:
    """`family.labels(*labels)`, looked up once per label set (labels() costs about 2 us, and
    matched events count three series each). For counters whose label values are bounded
    (statuses, outcomes, matched event types) and whose series are never removed."""
    return family.labels(*labels)
