"""Config loading: the YAML file, environment overrides, and messages naming file and key."""

from pathlib import Path

import pytest

from trigger_daemon.config import load_config
from trigger_daemon.errors import ConfigError
from trigger_daemon.triggers.files import load_yaml_triggers

from .configs import config_error, write

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "trigger-daemon.yaml"


def test_the_example_config_and_its_triggers_are_valid() -> None:
    config = load_config(EXAMPLE)
    names = [t.name for t in load_yaml_triggers(config)]
    assert names == ["large-usd-deposit", "payment-succeeded", "account-flagged-for-review"]
    assert config.settings.orchestration.api_version == "v2"


def test_defaults_need_no_file() -> None:
    settings = load_config(None).settings
    assert settings.store.url == "sqlite:///./trigger-daemon.db"
    assert settings.kafka.topics == ["ledger", "payments"]
    assert settings.api.port == 8081


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "kafka: {bootstrap_servers: 'file:9092', group_id: g}\n")
    monkeypatch.setenv("TRIGGER_DAEMON_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    monkeypatch.setenv("TRIGGER_DAEMON_KAFKA__TOPICS", "ledger, payments ,x")
    monkeypatch.setenv("TRIGGER_DAEMON_ORCHESTRATION__RETRY__MAX_ATTEMPTS", "3")
    settings = load_config(path).settings
    assert settings.kafka.bootstrap_servers == "env:9092"
    assert settings.kafka.group_id == "g"
    assert settings.kafka.topics == ["ledger", "payments", "x"]
    assert settings.orchestration.retry.max_attempts == 3


def test_secrets_do_not_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIGGER_DAEMON_ORCHESTRATION__TOKEN", "s3cr3t-token")
    settings = load_config(None).settings
    assert "s3cr3t-token" not in repr(settings)
    assert "s3cr3t-token" not in str(settings.model_dump())


def test_a_secret_written_with_a_trailing_line_break_is_read_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `echo token > file`, then a Kubernetes secret from the file: as a header the line break
    # made every call raise, and every matched record was retried for ever.
    monkeypatch.setenv("TRIGGER_DAEMON_ORCHESTRATION__TOKEN", "s3cr3t-token\n")
    token = load_config(None).settings.orchestration.token
    assert token is not None
    assert token.get_secret_value() == "s3cr3t-token"
    monkeypatch.delenv("TRIGGER_DAEMON_ORCHESTRATION__TOKEN")
    monkeypatch.setenv("TRIGGER_DAEMON_ORCHESTRATION__CLIENT_ID", "daemon")
    monkeypatch.setenv("TRIGGER_DAEMON_ORCHESTRATION__CLIENT_SECRET", " s3cr3t\r\n")
    monkeypatch.setenv("TRIGGER_DAEMON_ORCHESTRATION__TOKEN_URL", "http://auth/token")
    secret = load_config(None).settings.orchestration.client_secret
    assert secret is not None
    assert secret.get_secret_value() == "s3cr3t"


def test_the_broker_password_and_the_store_url_are_read_without_a_trailing_line_break(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Kept, the broker refused the login and PostgreSQL named a database "trigger\n".
    monkeypatch.setenv("TRIGGER_DAEMON_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("TRIGGER_DAEMON_KAFKA__SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("TRIGGER_DAEMON_KAFKA__SASL_USERNAME", "daemon")
    monkeypatch.setenv("TRIGGER_DAEMON_KAFKA__SASL_PASSWORD", "kafka-pa55word\n")
    monkeypatch.setenv("TRIGGER_DAEMON_STORE__URL", "postgresql://u:pw@db/trigger\n")
    settings = load_config(None).settings
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == "kafka-pa55word"
    assert settings.store.url == "postgresql://u:pw@db/trigger"


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("s3cr3t\ntoken", "holds a control character, which no HTTP header can carry"),
        ("s3cr3t\x7ftoken", "holds a control character, which no HTTP header can carry"),
        (" \n", "is empty"),
    ],
    ids=["a-line-break-inside", "a-delete-character", "blank"],
)
def test_a_token_no_header_can_carry_is_refused_without_printing_it(
    monkeypatch: pytest.MonkeyPatch, token: str, problem: str
) -> None:
    monkeypatch.setenv("TRIGGER_DAEMON_ORCHESTRATION__TOKEN", token)
    message = config_error(None)
    assert (
        message
        == f"environment TRIGGER_DAEMON_ORCHESTRATION__TOKEN: orchestration.token: {problem}"
    )
    assert "s3cr3t" not in message


def test_bad_values_name_the_file_and_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path, "orchestration: {base_url: 'ftp://x', api_version: v3}\nlogging: {formt: json}\n"
    )
    message = config_error(path)
    assert f"{path}: orchestration.base_url: must start with http://" in message
    assert f"{path}: orchestration.api_version: Input should be 'v1' or 'v2'" in message
    assert f"{path}: logging.formt: unknown setting" in message


def test_a_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIGGER_DAEMON_API__PORT", "eighty")
    assert "environment TRIGGER_DAEMON_API__PORT: api.port:" in config_error(None)


def test_half_configured_oauth_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "orchestration: {client_id: daemon}\n")
    assert "OAuth2 needs client_id, client_secret and token_url together" in config_error(path)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka:\n  topics: [a\n")
    assert f"{path}: not valid YAML: line" in config_error(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    assert "cannot read the config file" in config_error(tmp_path / "absent.yaml")


def test_trigger_problems_name_the_file_the_trigger_and_the_expression(tmp_path: Path) -> None:
    write(
        tmp_path,
        "- name: ok\n  event: E\n  workflowID: w\n"
        '- name: broken\n  event: E\n  workflowID: w\n  filter: "a =="\n',
        "triggers/more.yaml",
    )
    path = write(
        tmp_path,
        "triggers_files: ['triggers/*.yaml']\n"
        "triggers:\n  - {event: E, workflowID: w}\n"
        "  - {name: ok, event: E, workflowID: w}\n",
    )
    message = config_error(path)
    assert f"{path}: triggers[0]: name: is required for YAML triggers" in message
    more = tmp_path / "triggers" / "more.yaml"
    assert f"{more}: triggers[1] (broken): filter 'a ==': incomplete" in message
    assert f"{more}: triggers[0] (ok): name: also used in {path}: triggers[1] (ok)" in message
    assert len(message.splitlines()) == 3


def test_a_glob_matching_nothing_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "triggers_files: ['none/*.yaml']\n")
    assert "'none/*.yaml' matches no file" in config_error(path)


def test_a_misspelt_setting_variable_is_refused_with_the_nearest_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIGGER_DAEMON_KAFK__TOPICS", "ledger")
    monkeypatch.setenv("TRIGGER_DAEMON_API_TOKEN", "a deployment's own secret, not a setting")
    with pytest.raises(ConfigError) as caught:
        load_config(None)
    assert str(caught.value) == (
        "environment TRIGGER_DAEMON_KAFK__TOPICS: unknown setting; "
        "did you mean TRIGGER_DAEMON_KAFKA__TOPICS?"
    )


def test_a_section_check_blames_the_variable_that_set_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIGGER_DAEMON_API__HOST", "0.0.0.0")
    with pytest.raises(ConfigError) as caught:
        load_config(None)
    assert str(caught.value).startswith(
        "environment TRIGGER_DAEMON_API__HOST: api: refusing to serve the API on 0.0.0.0"
    )


def test_a_short_token_from_a_json_variable_is_named_in_characters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIGGER_DAEMON_API__AUTH__MODE", "token")
    monkeypatch.setenv(
        "TRIGGER_DAEMON_API__AUTH__TOKENS", '[{"token": "short", "scopes": ["orchestration:read"]}]'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(None)
    assert str(caught.value) == (
        "environment TRIGGER_DAEMON_API__AUTH__TOKENS: api.auth.tokens.0.token: "
        "It should have at least 16 characters, not 5"
    )


def test_a_list_variable_that_is_not_json_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIGGER_DAEMON_API__AUTH__TOKENS", "not json")
    with pytest.raises(ConfigError) as caught:
        load_config(None)
    assert str(caught.value) == (
        "environment TRIGGER_DAEMON_API__AUTH__TOKENS: not valid JSON (lists and mappings are "
        'written as JSON, e.g. ["a", "b"] or [{"key": "value"}])'
    )


def test_daemon_wide_flow_limits_are_read_and_bad_ones_named(tmp_path: Path) -> None:
    path = write(tmp_path, "orchestration: {max_calls_per_second: 2.5, max_concurrency: 8}\n")
    limits = load_config(path).settings.orchestration.flow_limits()
    assert (limits.calls_per_second, limits.max_concurrency) == (2.5, 8)
    assert load_config(None).settings.orchestration.flow_limits().unlimited
    bad = write(tmp_path, "orchestration: {max_calls_per_second: 0}\n")
    assert "orchestration.max_calls_per_second" in config_error(bad)


def test_consumers_read_committed_transactions_unless_set_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_config(None).settings.kafka.isolation_level == "read_committed"
    monkeypatch.setenv("TRIGGER_DAEMON_KAFKA__ISOLATION_LEVEL", "read_uncommitted")
    assert load_config(None).settings.kafka.isolation_level == "read_uncommitted"
    monkeypatch.setenv("TRIGGER_DAEMON_KAFKA__ISOLATION_LEVEL", "committed")
    assert "kafka.isolation_level" in config_error(None)
