"""Security settings: the API never opens off loopback by accident, tokens and Kafka security
are checked as a whole, and no secret shows in a repr, a dump or a config error."""

from pathlib import Path

import pytest

from trigger_daemon.adapters.kafka import KafkaConnection
from trigger_daemon.app import api_auth
from trigger_daemon.config import is_loopback, load_config
from trigger_daemon.errors import BrokerError

from .configs import config_error, write

TOKEN = "tok-0123456789abcdef-secret"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "trigger-daemon.internal"])
def test_no_authentication_off_loopback_refuses_to_start(tmp_path: Path, host: str) -> None:
    message = config_error(write(tmp_path, f"api: {{host: '{host}'}}\n"))
    assert "api: refusing to serve the API on" in message
    assert "api.auth.mode" in message
    assert "allow_unauthenticated" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts_need_no_authentication(tmp_path: Path, host: str) -> None:
    settings = load_config(write(tmp_path, f"api: {{host: '{host}'}}\n")).settings
    assert is_loopback(host)
    assert settings.api.auth.mode == "none"
    assert api_auth(settings.api.auth) is None


def test_allow_unauthenticated_opens_a_public_host_explicitly(tmp_path: Path) -> None:
    path = write(tmp_path, "api: {host: 0.0.0.0, auth: {allow_unauthenticated: true}}\n")
    assert load_config(path).settings.api.host == "0.0.0.0"


def test_the_environment_can_refuse_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIGGER_DAEMON_API__HOST", "0.0.0.0")
    assert "api.auth.mode" in config_error(None)


@pytest.mark.parametrize("written", [TOKEN, f"{TOKEN}\n"], ids=["as-is", "with-a-line-break"])
def test_token_mode_takes_tokens_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str
) -> None:
    # A secret file written with `echo` ends with a line break, which no client sends.
    monkeypatch.setenv("TD_TEST_API_TOKEN", written)
    path = write(
        tmp_path,
        "api:\n  host: 0.0.0.0\n  auth:\n    mode: token\n    tokens:\n"
        "      - {token_env: TD_TEST_API_TOKEN, scopes: [orchestration:read]}\n",
    )
    settings = load_config(path).settings
    [token] = settings.api.auth.tokens
    assert token.secret() == TOKEN
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings.model_dump())
    assert api_auth(settings.api.auth) is not None


def test_token_mode_takes_the_whole_list_as_json_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIGGER_DAEMON_API__AUTH__MODE", "token")
    monkeypatch.setenv(
        "TRIGGER_DAEMON_API__AUTH__TOKENS",
        f'[{{"token": "{TOKEN}", "scopes": ["orchestration:write"]}}]',
    )
    settings = load_config(None).settings
    assert settings.api.auth.tokens[0].scopes == ["orchestration:write"]


@pytest.mark.parametrize(
    ("auth", "fragment"),
    [
        ("{mode: token}", "mode token needs at least one entry in tokens"),
        ("{mode: token, tokens: [{token: short, scopes: [orchestration:read]}]}", "at least 16"),
        (f"{{mode: token, tokens: [{{token: {TOKEN}, scopes: [admin]}}]}}", "orchestration:read"),
        (f"{{mode: token, tokens: [{{token: {TOKEN}, scopes: []}}]}}", "at least 1 item"),
        (
            "{mode: token, tokens: [{token_env: TD_TEST_UNSET, scopes: [orchestration:read]}]}",
            "TD_TEST_UNSET",
        ),
        ("{mode: jwt, issuer: https://idp}", "mode jwt needs jwks_url, audience"),
        ("{mode: jwt, jwks_url: ftp://x, issuer: i, audience: a}", "must start with http"),
        (
            "{mode: jwt, jwks_url: https://x, issuer: i, audience: a, algorithms: [HS256]}",
            "asymmetric",
        ),
        (
            "{mode: jwt, jwks_url: https://x, issuer: i, audience: a, algorithms: [none]}",
            "asymmetric",
        ),
        ("{mode: basic}", "'none', 'token' or 'jwt'"),
    ],
)
def test_incomplete_authentication_is_refused(tmp_path: Path, auth: str, fragment: str) -> None:
    message = config_error(write(tmp_path, f"api: {{auth: {auth}}}\n"))
    assert fragment in message
    assert TOKEN not in message


def test_a_token_in_a_config_error_is_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, f"api: {{auth: {{mode: token, tokens: [{{token: {TOKEN}}}]}}}}\n")
    message = config_error(path)
    assert "scopes" in message
    assert TOKEN not in message


@pytest.mark.parametrize(
    ("kafka", "fragment"),
    [
        ("{security_protocol: SASL_SSL}", "needs sasl_mechanism, sasl_username"),
        (
            "{security_protocol: SASL_PLAINTEXT, sasl_mechanism: PLAIN, sasl_username: u}",
            "sasl_password is missing",
        ),
        (
            "{sasl_mechanism: PLAIN, sasl_username: u, sasl_password: p}",
            "needs security_protocol SASL",
        ),
        ("{ssl_cafile: /ca.pem}", "need security_protocol SSL or SASL_SSL"),
        ("{security_protocol: SSL, ssl_certfile: /c.pem}", "ssl_certfile and ssl_keyfile together"),
        (
            "{security_protocol: SASL_SSL, sasl_mechanism: GSSAPI, sasl_username: u}",
            "SCRAM-SHA-512",
        ),
    ],
)
def test_inconsistent_kafka_security_is_refused(tmp_path: Path, kafka: str, fragment: str) -> None:
    assert fragment in config_error(write(tmp_path, f"kafka: {kafka}\n"))


def test_kafka_secrets_stay_out_of_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIGGER_DAEMON_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("TRIGGER_DAEMON_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("TRIGGER_DAEMON_KAFKA__SASL_USERNAME", "daemon")
    monkeypatch.setenv("TRIGGER_DAEMON_KAFKA__SASL_PASSWORD", "kafka-pa55word")
    kafka = load_config(None).settings.kafka
    connection = KafkaConnection("b:9093", sasl_password=kafka.sasl_password)
    assert "kafka-pa55word" not in repr(kafka)
    assert "kafka-pa55word" not in repr(connection)


def test_an_unreadable_client_certificate_is_a_broker_error_naming_the_settings(
    tmp_path: Path,
) -> None:
    connection = KafkaConnection(
        "b:9093",
        security_protocol="SSL",
        ssl_certfile=str(tmp_path / "missing.pem"),
        ssl_keyfile=str(tmp_path / "missing.key"),
    )
    with pytest.raises(BrokerError, match="ssl_certfile") as caught:
        connection.client_options()
    assert not caught.value.retriable


def test_a_store_url_password_stays_out_of_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIGGER_DAEMON_STORE__URL", "postgresql://app:db-pa55word@db/triggers")
    settings = load_config(None).settings
    assert "db-pa55word" not in repr(settings)
    assert settings.store.url.endswith("@db/triggers")
