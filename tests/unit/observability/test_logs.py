"""A library's repeated lines are let through once per window."""

from __future__ import annotations

import logging

from trigger_daemon.observability.logs import QuietRepeats


def record(name: str, template: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, template, args, None)


def test_a_storm_of_one_template_shows_once_per_window_whatever_its_arguments() -> None:
    now = [0.0]
    quiet = QuietRepeats(("aiokafka",), window_seconds=60, clock=lambda: now[0])
    storm = [
        record("aiokafka.conn", "Unable connect to node %s: %s", n, "refused") for n in range(60)
    ]
    assert sum(quiet.filter(line) for line in storm) == 1
    now[0] = 61.0
    assert quiet.filter(record("aiokafka.conn", "Unable connect to node %s: %s", 1, "refused"))


def test_different_templates_and_other_loggers_pass() -> None:
    quiet = QuietRepeats(("aiokafka",), clock=lambda: 0.0)
    assert quiet.filter(record("aiokafka.conn", "one thing %s", 1))
    assert quiet.filter(record("aiokafka.conn", "another thing %s", 1))
    assert quiet.filter(record("aiokafka.consumer", "one thing %s", 1))  # another logger
    assert all(quiet.filter(record("uvicorn.error", "same %s", n)) for n in range(5))
