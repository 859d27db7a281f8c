"""What the operator sees: logs, metrics, traces, and the redaction of secrets in all of them.

logs       configure_logging(): one structlog chain, JSON or console
metrics    the Prometheus metric families
tracing    OpenTelemetry spans, off unless the OTEL_* variables ask for export
redaction  secrets and URL passwords removed from every rendered line
"""
