"""Recording sinks: `ports.DeadLetterSink` and `ports.OutcomeSink` that keep what they get."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trigger_daemon.ports import DeadLetter, DeadLetterSink, OutcomeSink


class RecordingDeadLetters:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def publish(self, letter: DeadLetter) -> None:
        self.letters.append(letter)


class RecordingOutcomeEvents:
    def __init__(self) -> None:
        self.published: list[tuple[str, Mapping[str, Any]]] = []  # (key, event)

    async def publish(self, event: Mapping[str, Any], key: str) -> None:
        self.published.append((key, event))


if TYPE_CHECKING:

    def _implement_the_sink_ports(
        letters: RecordingDeadLetters, outcomes: RecordingOutcomeEvents
    ) -> tuple[DeadLetterSink, OutcomeSink]:
        """mypy checks here that the recording sinks have the methods of the sink ports."""
        return letters, outcomes
