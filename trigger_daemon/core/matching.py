"""Which triggers does an event match? An index by event type, then version, then filter.

Within a type, triggers whose filter is or contains an equality, anything-but, numeric range,
prefix, either-or or exists test of a field are found from the event's value (`prefilter`),
so thousands of them cost about as much as one."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from trigger_daemon.core import prefilter
from trigger_daemon.core.events import Envelope
from trigger_daemon.core.expressions import ExpressionError, is_truthy
from trigger_daemon.core.prefilter import CandidateIndex
from trigger_daemon.core.triggers import CompiledTrigger


@dataclass(frozen=True, slots=True)
class FilterFailure:
    """A filter that raised while evaluated: a non-match the shell logs and counts."""

    trigger_id: str
    error: str


@dataclass(frozen=True, slots=True)
class MatchResult:
    triggers: tuple[CompiledTrigger, ...]
    filter_failures: tuple[FilterFailure, ...] = ()


NO_MATCH = MatchResult(triggers=())


class TriggerIndex:
    """Triggers grouped by event type, so an event only meets the triggers of its type."""

    def __init__(
        self, triggers: Iterable[CompiledTrigger], index_from: int = prefilter.INDEX_FROM
    ) -> None:
        """`index_from`: the fewest triggers of a type that are worth indexing."""
        by_type: defaultdict[str, list[CompiledTrigger]] = defaultdict(list)
        for compiled in triggers:
            by_type[compiled.trigger.event].append(compiled)
        # A stable order (oldest first) keeps the calls for one event in a predictable order.
        self._by_type = {
            event_type: CandidateIndex(
                sorted(group, key=lambda c: (c.trigger.created_at, c.trigger.id)), index_from
            )
            for event_type, group in by_type.items()
        }

    def __len__(self) -> int:
        return sum(len(group) for group in self._by_type.values())

    def has_type(self, event_type: str) -> bool:
        return event_type in self._by_type

    def match(self, envelope: Envelope, document: dict[str, Any]) -> MatchResult:
        index = self._by_type.get(envelope.type)
        if index is None:  # not `not index`, which would call __len__ per event
            return NO_MATCH
        matched: list[CompiledTrigger] = []
        failures: list[FilterFailure] = []
        for compiled, known_true in index.candidates(document):
            wanted_version = compiled.trigger.version
            if wanted_version is not None and envelope.version != wanted_version:
                continue
            if known_true:
                matched.append(compiled)
                continue
            try:
                if is_truthy(compiled.evaluate_filter(document)):
                    matched.append(compiled)
            except ExpressionError as exc:
                failures.append(FilterFailure(compiled.trigger.id, str(exc)))
        if not matched and not failures:
            return NO_MATCH  # the common case, without building a result
        return MatchResult(triggers=tuple(matched), filter_failures=tuple(failures))
