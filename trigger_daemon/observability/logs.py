"""Logs: one structlog chain for the process, JSON or console, secrets redacted, long values
cut.

Log lines carry stable event names (`occurrence.succeeded`, `record.dead_lettered`, ...) and
context fields (event_id, trigger_id, topic, partition, offset, ...).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

import orjson
import structlog

from trigger_daemon.observability.redaction import Redactor

# A field longer than this is cut, saying so: an API's error message can run to megabytes, and
# so long a line is split or dropped by most log shippers. The store keeps the whole text; a
# traceback (`exception`) is never cut.
MAX_FIELD_CHARS = 4096

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
        structlog.processors.JSONRenderer(serializer=_json_line)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        # Cut after redacting: a secret cut in two would no longer be found.
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            redact,
            cut_long_values,
            renderer,
        ],
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
    # A broker outage makes aiokafka repeat the same few lines dozens of times a second; the
    # daemon says it once itself (kafka.unreachable, kafka.recovered).
    handler.addFilter(QuietRepeats(("aiokafka",)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries are chatty at info; their warnings still show.
    root.setLevel(max(_LEVELS[level], logging.WARNING))


def cut_long_values(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: each string field past MAX_FIELD_CHARS is cut, saying so."""
    for key, value in event_dict.items():
        if value.__class__ is str and len(value) > MAX_FIELD_CHARS and key != "exception":
            event_dict[key] = f"{value[:MAX_FIELD_CHARS]}… (cut from {len(value)} characters)"
    return event_dict


def _json_line(event: Any, **options: Any) -> str:
    """orjson renders a line in a third of json's time (one line per occurrence adds up);
    what it refuses (an integer past 64 bits, a non-string key) goes through json."""
    try:
        return orjson.dumps(event, default=options.get("default")).decode()
    except TypeError:
        return json.dumps(event, separators=(",", ":"), **options)


class QuietRepeats(logging.Filter):
    """Lets a library's line through once per `window_seconds` per logger and message
    template (the format string before its arguments); the repeats in between are dropped."""

    def __init__(
        self,
        logger_prefixes: tuple[str, ...],
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._prefixes = logger_prefixes
        self._window = window_seconds
        self._clock = clock
        self._last_shown: dict[tuple[str, object], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._prefixes):
            return True
        key = (record.name, record.msg)
        now = self._clock()
        shown = self._last_shown.get(key)
        if shown is not None and now - shown < self._window:
            return False
        self._last_shown[key] = now
        return True
