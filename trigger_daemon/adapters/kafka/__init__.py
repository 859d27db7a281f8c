"""Kafka on aiokafka: the consumer-group source and the producer of dead letters and outcome
events.

connection  KafkaConnection: servers, client id, TLS and SASL; starting a client
consumer    KafkaSource: fetches, commits, rebalances, consumer lag
publisher   KafkaPublisher and the sinks over it: KafkaDeadLetters, KafkaOutcomeEvents
health      BrokerWatch: is the broker answering (readiness, one line when lost and back)
"""

from trigger_daemon.adapters.kafka.connection import KafkaConnection
from trigger_daemon.adapters.kafka.consumer import KafkaSource
from trigger_daemon.adapters.kafka.health import BrokerWatch
from trigger_daemon.adapters.kafka.publisher import (
    KafkaDeadLetters,
    KafkaOutcomeEvents,
    KafkaPublisher,
    dead_letter_headers,
)

__all__ = [
    "BrokerWatch",
    "KafkaConnection",
    "KafkaDeadLetters",
    "KafkaOutcomeEvents",
    "KafkaPublisher",
    "KafkaSource",
    "dead_letter_headers",
]
