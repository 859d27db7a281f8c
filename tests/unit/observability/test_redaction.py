"""Secrets never reach the log output: the real logging configuration, its JSON lines read back
from the stream, for structlog events, standard-library records and tracebacks alike."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import structlog

from trigger_daemon.config import load_config
from trigger_daemon.observability.logs import configure_logging
from trigger_daemon.observability.redaction import (
    MASK,
    Redactor,
    collect_secrets,
    redact,
    url_passwords,
)

TOKEN = "orch-token-5f1c0ffee"
CLIENT_SECRET = "client-s3cret-value"
SASL_PASSWORD = "kafka-pa55word"
API_TOKEN = "api-token-0123456789abcdef"
DB_PASSWORD = "db-pa55word"
SECRETS = [TOKEN, CLIENT_SECRET, SASL_PASSWORD, API_TOKEN, DB_PASSWORD]


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "ORCHESTRATION__CLIENT_ID": "daemon",
        "ORCHESTRATION__CLIENT_SECRET": CLIENT_SECRET,
        "ORCHESTRATION__TOKEN_URL": "https://idp/oauth/token",
        "KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA__SASL_USERNAME": "daemon",
        "KAFKA__SASL_PASSWORD": SASL_PASSWORD,
        "STORE__URL": f"postgresql://app:{DB_PASSWORD}@db:5432/triggers",
        "API__AUTH__MODE": "token",
        "API__AUTH__TOKENS": json.dumps([{"token": API_TOKEN, "scopes": ["orchestration:read"]}]),
    }
    for key, value in env.items():
        monkeypatch.setenv(f"TRIGGER_DAEMON_{key}", value)


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_settings_yield_every_secret(settings_env: None) -> None:
    secrets = collect_secrets(load_config(None).settings)
    assert set(secrets) == {CLIENT_SECRET, SASL_PASSWORD, API_TOKEN, DB_PASSWORD}


@pytest.mark.usefixtures("settings_env", "restore_logging")
def test_secrets_and_url_passwords_are_redacted_in_the_json_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = load_config(None).settings
    configure_logging("debug", "json", secrets=[*collect_secrets(settings), TOKEN])
    log = structlog.get_logger("redaction-test")

    log.info("call.failed", error=f"401 for Bearer {TOKEN}", detail={"nested": [API_TOKEN]})
    log.warning(f"sasl {SASL_PASSWORD} refused", url=f"postgresql://app:{DB_PASSWORD}@db/x")
    log.info("unconfigured", url="https://svc:not-configured-pw@api.example/v2")
    try:
        raise RuntimeError(f"token endpoint said no to {CLIENT_SECRET}")
    except RuntimeError:
        log.exception("oauth.failed")
    logging.getLogger("uvicorn.error").error("stdlib %s", API_TOKEN)
    try:
        raise ValueError(f"connect to postgresql://app:{DB_PASSWORD}@db failed")
    except ValueError:
        logging.getLogger("aiokafka").exception("stdlib with traceback")

    output = capsys.readouterr().err
    records = lines(output)
    assert len(records) == 6
    for secret in [*SECRETS, "not-configured-pw"]:
        assert secret not in output
    assert records[0]["error"] == f"401 for Bearer {MASK}"
    assert records[0]["detail"] == {"nested": [MASK]}
    assert records[1]["url"] == f"postgresql://app:{MASK}@db/x"
    assert records[2]["url"] == f"https://svc:{MASK}@api.example/v2"
    assert "RuntimeError: token endpoint said no to ***" in records[3]["exception"]
    assert records[4]["event"] == f"stdlib {MASK}"
    assert "Traceback" in records[5]["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_the_console_format_is_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "console", secrets=[TOKEN])
    structlog.get_logger("redaction-console").info("sent", header=f"Bearer {TOKEN}")
    output = capsys.readouterr().err
    assert TOKEN not in output
    assert f"Bearer {MASK}" in output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:p%40ss@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("see http://a:b@h and https://c:d@i/x", "see http://a:***@h and https://c:***@i/x"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),  # no password
        ("http://host:8080/path", "http://host:8080/path"),  # a port is not a password
        ("user:pass@host", "user:pass@host"),  # not a URL
    ],
)
def test_url_passwords_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_short_secrets_are_not_searched_for_but_long_ones_are() -> None:
    processor = Redactor(["abc", "longer-secret"])
    event = processor(None, "info", {"event": "abc and longer-secret"})
    assert event["event"] == "abc and ***"


def test_url_passwords_are_collected_from_plain_string_settings() -> None:
    assert url_passwords("postgresql://u:pw1@h/db and http://x:pw2@y") == ["pw1", "pw2"]
