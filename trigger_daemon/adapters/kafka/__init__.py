"""Kafka on aiokafka: the consumer-group source and the producer of dead letters and outcome
events."""

from trigger_daemon.adapters.kafka.consumer import (
    KafkaConnection,
    KafkaDeadLetters,
    KafkaOutcomeEvents,
    KafkaPublisher,
    KafkaSource,
    dead_letter_headers,
)

__all__ = [
    "KafkaConnection",
    "KafkaDeadLetters",
    "KafkaOutcomeEvents",
    "KafkaPublisher",
    "KafkaSource",
    "dead_letter_headers",
]
