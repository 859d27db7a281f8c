"""Log lines: each one JSON, and a library's repeated lines let through once per window."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from trigger_daemon.observability.logs import MAX_FIELD_CHARS, QuietRepeats, configure_logging


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


@pytest.mark.usefixtures("restore_logging")
def test_every_line_is_json_even_with_what_orjson_refuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json", secrets=["a-secret-of-the-daemon"])
    log = structlog.get_logger("test")
    log.info("plain", partition=3, note="é")
    log.info("refused_by_orjson", amount=2**70, by_number={1: "x"})
    log.info("secret", detail="token a-secret-of-the-daemon at postgresql://u:pw@db/x")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == ["plain", "refused_by_orjson", "secret"]
    assert lines[0]["note"] == "é"
    assert lines[1]["amount"] == 2**70
    assert lines[1]["by_number"] == {"1": "x"}
    assert lines[2]["detail"] == "token *** at postgresql://u:***@db/x"


@pytest.mark.usefixtures("restore_logging")
def test_a_long_field_is_cut_after_its_secrets_are_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "a-secret-of-the-daemon"
    configure_logging("info", "json", secrets=[secret])
    # The secret straddles the cut: cut first, its head would be left unredacted.
    error = "x" * (MAX_FIELD_CHARS - 5) + secret + "y" * 5_000_000
    log = structlog.get_logger("test")
    log.warning("occurrence.failed", error=error, trigger_id="t" * MAX_FIELD_CHARS)
    try:
        raise RuntimeError("z" * (2 * MAX_FIELD_CHARS))
    except RuntimeError:
        log.exception("record.failed_will_retry")
    failed, retried = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert failed["error"] == "x" * (MAX_FIELD_CHARS - 5) + "***yy… (cut from 5004094 characters)"
    assert failed["trigger_id"] == "t" * MAX_FIELD_CHARS  # at the limit: whole
    assert "z" * (2 * MAX_FIELD_CHARS) in retried["exception"]  # a traceback is never cut
