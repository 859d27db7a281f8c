"""What a runWorkflow answer means: each kind of answer, as plain values, and its CallAttempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from trigger_daemon.adapters.orchestration.answers import EXCERPT_CHARS, classify, json_object
from trigger_daemon.ports import CallAttempt

INSTANCE = {"id": "instance-1", "workflowID": "wf", "terminated": False}
ERROR_BODY = b'{"errorCode": "NOT_FOUND", "errorMessage": "workflow not found"}'


def failed(
    detail: str, status: int, transient: bool = False, retry_after: float | None = None
) -> CallAttempt:
    return CallAttempt(
        error=f"runWorkflow wf: {detail}",
        status_code=status,
        transient=transient,
        retry_after=retry_after,
    )


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (201, b'{"data": {"id": "instance-1", "workflowID": "wf", "terminated": false}}', INSTANCE),
        (201, b'{"id": "instance-1", "workflowID": "wf", "terminated": false}', INSTANCE),
        (200, b'{"data": {"id": "instance-1"}}', {"id": "instance-1"}),
        (201, b'{"data": [1, 2], "id": "instance-1"}', {"data": [1, 2], "id": "instance-1"}),
        (201, b'{"data": null}', {"data": None}),
        (201, b"{}", {}),
        (201, '{"data": {"note": "d\u00e9p\u00f4t"}}'.encode(), {"note": "d\u00e9p\u00f4t"}),
    ],
    ids=[
        "data-object",
        "bare-object",
        "200-is-success-too",
        "data-not-an-object",
        "data-null",
        "empty-object",
        "utf8-text",
    ],
)
def test_a_2xx_json_object_is_the_started_instance(
    status: int, body: bytes, expected: dict[str, Any]
) -> None:
    assert classify("wf", status, body) == CallAttempt(instance=expected, status_code=status)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (201, b'[{"id": "instance-1"}]'),
        (201, b'"instance-1"'),
        (201, b"null"),
        (201, b"created"),
        (201, b'{"data": '),
        (201, b'{"id": "caf\xe9"}'),
        (204, b""),
    ],
    ids=["array", "string", "null", "not-json", "cut-short", "not-utf8", "no-content"],
)
def test_a_2xx_answer_that_is_not_a_json_object_is_a_permanent_failure(
    status: int, body: bytes
) -> None:
    expected = failed(f"HTTP {status}: the answer is not a JSON object", status)

    assert classify("wf", status, body, reason_phrase="Created", retry_after="5") == expected


@pytest.mark.parametrize("status", [300, 302, 400, 404, 405, 409, 410, 422, 501, 505])
def test_other_statuses_are_permanent_with_the_api_error_message(status: int) -> None:
    attempt = classify("wf", status, ERROR_BODY, reason_phrase="Whatever", retry_after="5")

    assert attempt == failed(f"HTTP {status}: workflow not found", status)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_an_outage_of_ours_not_the_events(status: int) -> None:
    attempt = classify("wf", status, ERROR_BODY, reason_phrase="Whatever", retry_after="5")

    assert attempt == CallAttempt(
        error=f"runWorkflow wf: HTTP {status}: workflow not found",
        status_code=status,
        transient=True,
        credentials_refused=True,
    )


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_timeouts_throttling_and_outages_are_transient(status: int) -> None:
    attempt = classify("wf", status, ERROR_BODY)

    assert attempt == failed(f"HTTP {status}: workflow not found", status, transient=True)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("Thu, 01 Jan 1998 00:00:00 GMT", 0.0),
    ],
    ids=["seconds", "padded", "zero", "absent", "empty", "garbage", "negative", "fraction", "past"],
)
def test_a_transient_failure_carries_retry_after_in_seconds(
    retry_after: str | None, expected: float | None
) -> None:
    attempt = classify("wf", 503, ERROR_BODY, retry_after=retry_after)

    assert (attempt.transient, attempt.retry_after) == (True, expected)


def test_retry_after_as_a_future_http_date_is_the_seconds_until_then() -> None:
    in_an_hour = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)

    attempt = classify("wf", 429, b"", retry_after=in_an_hour)

    assert attempt.retry_after is not None
    assert 3500 < attempt.retry_after <= 3600


def test_a_permanent_failure_ignores_retry_after() -> None:
    assert classify("wf", 400, ERROR_BODY, retry_after="3").retry_after is None


@pytest.mark.parametrize(
    ("body", "reason_phrase", "encoding", "detail"),
    [
        (b'{"errorMessage": "  spaced  out  "}', "", "utf-8", "  spaced  out  "),
        (b'{"errorMessage": ""}', "", "utf-8", '{"errorMessage": ""}'),
        (b'{"errorMessage": 42}', "", "utf-8", '{"errorMessage": 42}'),
        (
            b'{"data": {"errorMessage": "nested"}}',
            "",
            "utf-8",
            '{"data": {"errorMessage": "nested"}}',
        ),
        (b'["errorMessage"]', "", "utf-8", '["errorMessage"]'),
        (
            b"<html>\n  <body>Bad \t gateway</body>\n</html>\n",
            "",
            "utf-8",
            "<html> <body>Bad gateway</body> </html>",
        ),
        (b"", "Service Unavailable", "utf-8", "Service Unavailable"),
        (b" \r\n\t ", "Service Unavailable", "utf-8", "Service Unavailable"),
        (b"", "", "utf-8", ""),
        (b"caf\xe9 ferm\xe9", "", "iso-8859-1", "caf\u00e9 ferm\u00e9"),
        (b"caf\xe9 ferm\xe9", "", "utf-8", "caf\ufffd ferm\ufffd"),
        (b"no such workflow", "", "base64", "no such workflow"),
    ],
    ids=[
        "error-message-as-is",
        "empty-error-message",
        "error-message-not-a-string",
        "error-message-not-at-the-top",
        "json-array",
        "html-whitespace-collapsed",
        "empty-body-reason-phrase",
        "blank-body-reason-phrase",
        "nothing-at-all",
        "body-in-its-charset",
        "undecodable-bytes-replaced",
        "a-charset-that-is-no-text-encoding-read-as-utf8",
    ],
)
def test_a_failure_says_why_from_error_message_else_body_else_reason_phrase(
    body: bytes, reason_phrase: str, encoding: str, detail: str
) -> None:
    attempt = classify("wf", 503, body, reason_phrase=reason_phrase, encoding=encoding)

    assert attempt.error == f"runWorkflow wf: HTTP 503: {detail}"


def test_a_body_excerpt_is_cut_but_an_error_message_is_not() -> None:
    long = "x" * (EXCERPT_CHARS * 3)

    excerpt = classify("wf", 500, long.encode())
    message = classify("wf", 500, b'{"errorMessage": "%s"}' % long.encode())

    assert excerpt.error == f"runWorkflow wf: HTTP 500: {'x' * EXCERPT_CHARS}"
    assert message.error == f"runWorkflow wf: HTTP 500: {long}"


def test_the_error_names_the_workflow_as_given() -> None:
    attempt = classify("review/deposit now", 404, ERROR_BODY)

    assert attempt.error == "runWorkflow review/deposit now: HTTP 404: workflow not found"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": 1}', {"a": 1}),
        (b'\xef\xbb\xbf{"a": 1}', {"a": 1}),
        ('{"a": "\u00e9"}'.encode("utf-16"), {"a": "\u00e9"}),
        (b"[1]", None),
        (b"1", None),
        (b"", None),
        (b"{", None),
        (b'{"a": "\xff"}', None),
        (b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, None),
    ],
    ids=[
        "object",
        "utf8-bom",
        "utf16",
        "array",
        "number",
        "empty",
        "cut-short",
        "not-utf8",
        "nested-beyond-the-recursion-limit",
    ],
)
def test_json_object_reads_any_json_encoding_and_only_objects(
    body: bytes, expected: dict[str, Any] | None
) -> None:
    assert json_object(body) == expected


# A NUL (PostgreSQL stores none) or a lone surrogate (no UTF-8 encoder writes one) in an
# outcome would make its write fail on every try.
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"data": {"id": "wi-\\u0000-1", "tags": ["a\\u0000b"], '
            b'"k\\u0000": {"x": "\\u0000"}}}',
            {"id": "wi-\ufffd-1", "tags": ["a\ufffdb"], "k\ufffd": {"x": "\ufffd"}},
        ),
        ('{"data": {"id": "wi-\\u0000"}}'.encode("utf-16"), {"id": "wi-\ufffd"}),
        (b'{"data": {"id": "wi-\\ud800", "\\uDC00": 1}}', {"id": "wi-\ufffd", "\ufffd": 1}),
        (b'{"data": {"id": "wi-\xed\xa0\x80"}}', {"id": "wi-\ufffd"}),
        (b'{"data": {"id": "wi-\\ud83d\\ude00"}}', {"id": "wi-\U0001f600"}),
        (
            b'{"data": {"note": "\\\\u0000 is how JSON writes a NUL"}}',
            {"note": "\\u0000 is how JSON writes a NUL"},
        ),
    ],
    ids=[
        "nul-escaped-in-utf8",
        "nul-in-utf16",
        "lone-surrogates-escaped",
        "a-surrogate-in-utf8-bytes",
        "a-surrogate-pair-is-one-character",
        "an-escaped-backslash-is-no-nul",
    ],
)
def test_what_no_store_keeps_becomes_a_replacement_character_in_a_started_instance(
    body: bytes, expected: dict[str, Any]
) -> None:
    assert classify("wf", 201, body) == CallAttempt(instance=expected, status_code=201)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"errorMessage": "no \\u0000 here"}', "no \ufffd here"),
        (b"Bad\x00Gateway", "Bad\ufffdGateway"),
        (b'{"errorMessage": "half \\udc00 a pair"}', "half \ufffd a pair"),
    ],
    ids=["nul-in-the-error-message", "nul-in-the-body", "lone-surrogate-in-the-error-message"],
)
def test_what_no_store_keeps_becomes_a_replacement_character_in_a_failure(
    body: bytes, detail: str
) -> None:
    assert classify("wf", 502, body).error == f"runWorkflow wf: HTTP 502: {detail}"


def test_an_answer_nested_beyond_the_recursion_limit_is_an_answer_not_an_exception() -> None:
    deep = b'{"data": ' * 100_000 + b"{}" + b"}" * 100_000

    started = classify("wf", 201, deep)
    refused = classify("wf", 500, deep)

    assert started == failed("HTTP 201: the answer is not a JSON object", 201)
    assert refused.error == f"runWorkflow wf: HTTP 500: {deep[:EXCERPT_CHARS].decode()}"
    assert refused.transient
