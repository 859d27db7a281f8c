"""The options a KafkaConnection hands to aiokafka (TLS files are covered by
tests/unit/test_security_config.py and tests/integration/test_kafka_security.py)."""

from __future__ import annotations

from pydantic import SecretStr

from trigger_daemon.adapters.kafka import KafkaConnection


def test_plaintext_options_name_the_cluster_and_client_only() -> None:
    assert KafkaConnection("b:9092").client_options() == {
        "bootstrap_servers": "b:9092",
        "client_id": "trigger-daemon",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_settings_become_aiokafka_options_with_the_password_revealed() -> None:
    connection = KafkaConnection(
        "b:9093",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="daemon",
        sasl_password=SecretStr("kafka-pa55word"),
    )
    options = connection.client_options()
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "daemon"
    assert options["sasl_plain_password"] == "kafka-pa55word"
    assert "ssl_context" not in options


def test_consumers_read_committed_transactions_only_unless_told_otherwise() -> None:
    # Records of a transaction its producer aborted must not start workflows.
    assert KafkaConnection("b:9092").consumer_options()["isolation_level"] == "read_committed"
    lenient = KafkaConnection("b:9092", isolation_level="read_uncommitted")
    assert lenient.consumer_options() == {
        **lenient.client_options(),
        "isolation_level": "read_uncommitted",
    }
