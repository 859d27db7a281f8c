"""How the daemon reaches the Kafka cluster: `KafkaConnection` (bootstrap servers, client id,
TLS and SASL settings, how consumers read) turned into aiokafka's client options, and
`start_client`, which starts a consumer or producer and converts what aiokafka raises on the
way into `BrokerError`.

A TLS file that cannot be read and a login the broker refuses are permanent errors naming the
settings to check; the broker's own errors at start are retriable. Secrets are pydantic
`SecretStr`s so they stay out of reprs.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import SecretStr

from trigger_daemon.errors import BrokerError

# aiokafka's SCRAM client raises these, not a KafkaError, when the broker refuses the login
# ("Server sent wrong signature!", or KeyError 'v' on an `e=` answer).
SASL_LOGIN_FAILURES = (ValueError, KeyError)
SASL_REJECTED = "the broker refused the SASL login (check sasl_username and sasl_password)"


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """What both the consumer and the producer need to reach the cluster."""

    bootstrap_servers: str
    client_id: str = "trigger-daemon"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None  # with ssl_keyfile: a client certificate (mTLS)
    ssl_keyfile: str | None = None
    ssl_key_password: SecretStr | None = None
    # How consumers read (kafka.isolation_level); producers take no such option.
    isolation_level: str = "read_committed"

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client, with the secrets revealed."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = self._ssl_context()
        if self.sasl_mechanism is not None:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            password = self.sasl_password
            options["sasl_plain_password"] = password.get_secret_value() if password else None
        return options

    def consumer_options(self) -> dict[str, Any]:
        """`client_options` and how a consumer reads: only committed transactions, by default."""
        return {**self.client_options(), "isolation_level": self.isolation_level}

    def _ssl_context(self) -> ssl.SSLContext:
        """Verifies the brokers against `ssl_cafile` (or the system's CAs); presents the client
        certificate when one is configured. A file that cannot be read is a BrokerError naming
        the setting, never a traceback."""
        try:
            context = ssl.create_default_context(cafile=self.ssl_cafile)
            if self.ssl_certfile:
                password = self.ssl_key_password
                context.load_cert_chain(
                    self.ssl_certfile,
                    self.ssl_keyfile,
                    password=password.get_secret_value() if password else None,
                )
        except (OSError, ssl.SSLError) as exc:
            detail = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
            raise BrokerError(
                "kafka TLS: cannot load ssl_cafile/ssl_certfile/ssl_keyfile "
                f"(is the key password right?): {detail}",
                retriable=False,
            ) from None
        return context


async def start_client(
    client: AIOKafkaConsumer | AIOKafkaProducer, role: str, servers: str
) -> None:
    """Start an aiokafka consumer or producer, or stop it and raise BrokerError: retriable for
    the broker's own errors, not for a refused SASL login (aiokafka raises plain errors there).
    `role` ("consumer", "producer") and `servers` name the client and its broker."""
    try:
        await client.start()
    except KafkaConnectionError as exc:
        await client.stop()
        # aiokafka's message holds a list of address tuples; say it as a sentence instead.
        raise BrokerError(
            f"cannot start the Kafka {role}: no broker at {servers} answered (is it running, "
            "and is kafka.bootstrap_servers right?)",
            retriable=True,
        ) from exc
    except KafkaError as exc:
        await client.stop()
        raise BrokerError(f"cannot start the Kafka {role}: {exc}", retriable=True) from exc
    except SASL_LOGIN_FAILURES as exc:
        await client.stop()
        raise BrokerError(
            f"cannot start the Kafka {role}: {SASL_REJECTED}", retriable=False
        ) from exc
