"""Reading a token endpoint's answer: the access token and its lifetime, or why there is none."""

from __future__ import annotations

import pytest

from trigger_daemon.adapters.orchestration.auth import read_token
from trigger_daemon.errors import WorkflowCallError


@pytest.mark.parametrize(
    ("body", "lifetime"),
    [
        (b'{"access_token": "t", "token_type": "bearer", "expires_in": 3600}', 3600.0),
        (b'{"access_token": "t", "expires_in": 0.5}', 0.5),
        (b'{"access_token": "t", "expires_in": "120"}', 120.0),
        (b'{"access_token": "t", "expires_in": -5}', 0.0),
        (b'{"access_token": "t"}', None),
        (b'{"access_token": "t", "expires_in": null}', None),
        (b'{"access_token": "t", "expires_in": true}', None),
        (b'{"access_token": "t", "expires_in": "soon"}', None),
        (b'{"access_token": "t", "expires_in": [60]}', None),
    ],
    ids=[
        "seconds",
        "fraction",
        "string",
        "negative",
        "absent",
        "null",
        "boolean",
        "not-a-number",
        "list",
    ],
)
def test_a_token_lasts_expires_in_seconds_or_until_refused(
    body: bytes, lifetime: float | None
) -> None:
    assert read_token(200, body) == ("t", lifetime)


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (401, b'{"error": "invalid_client"}', "token endpoint answered HTTP 401 (invalid_client)"),
        (401, b'{"access_token": "t"}', "token endpoint answered HTTP 401"),
        (400, b'{"error": 7}', "token endpoint answered HTTP 400"),
        (503, b"<html>down</html>", "token endpoint answered HTTP 503"),
        (
            200,
            b'{"token_type": "bearer"}',
            "token endpoint answered HTTP 200 without an access_token",
        ),
        (200, b'{"access_token": ""}', "token endpoint answered HTTP 200 without an access_token"),
        (200, b'{"access_token": 42}', "token endpoint answered HTTP 200 without an access_token"),
        (
            200,
            b'{"error": "temporarily_unavailable"}',
            "token endpoint answered HTTP 200 without an access_token (temporarily_unavailable)",
        ),
        (200, b"not json", "token endpoint answered HTTP 200 without an access_token"),
        (
            200,
            b'{"access_token": " \\n "}',
            "token endpoint answered HTTP 200 without an access_token",
        ),
        (
            200,
            b'{"access_token": "t\\nX-Injected: 1"}',
            "token endpoint answered HTTP 200 with an access_token no HTTP header can carry",
        ),
        (
            200,
            b'{"access_token": "t\\ud800"}',
            "token endpoint answered HTTP 200 with an access_token no HTTP header can carry",
        ),
    ],
    ids=[
        "refused",
        "refused-with-a-token",
        "error-not-a-string",
        "not-json",
        "no-token",
        "empty-token",
        "token-not-a-string",
        "oauth-error",
        "success-not-json",
        "blank-token",
        "a-line-break-inside",
        "a-lone-surrogate",
    ],
)
def test_an_answer_without_a_token_is_a_retriable_error(
    status: int, body: bytes, message: str
) -> None:
    with pytest.raises(WorkflowCallError) as raised:
        read_token(status, body)

    assert str(raised.value) == message
    assert raised.value.retriable


def test_a_token_is_read_without_surrounding_whitespace() -> None:
    assert read_token(200, b'{"access_token": "t\\n", "expires_in": 60}') == ("t", 60.0)
