"""Which triggers of one event type can match an event, without evaluating every filter.

A filter that starts with an equality between a plain field path and a literal

    event.payment.provider == 'STRIPE'
    event.transactions[0].postings[0].destination == 'treasury:0' && event.amount > `100`

cannot match an event whose field holds something else: JMESPath's `&&` returns its left side
when that is false, so the rest of the filter is not even evaluated and cannot fail. Such
triggers are indexed by (path, literal). An event evaluates each distinct path once and looks
its value up, so 10,000 triggers filtering on the same field cost one lookup instead of 10,000
evaluations. Other filters are evaluated as before, and the candidates keep the triggers'
order, so matching gives exactly the same triggers and the same filter failures as evaluating
every filter.

Equality follows JMESPath (`jmespath.visitor._equals`): a number equals the same number
whatever its type (1 == 1.0), but never a boolean (1 != true). Filters are read through their
typed syntax tree (core.expression_syntax); paths are walked directly (core.paths).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trigger_daemon.core.expression_syntax import AllOf, Comparison, FieldPath, LiteralValue
from trigger_daemon.core.expressions import Expression
from trigger_daemon.core.paths import Path, walk
from trigger_daemon.core.triggers import CompiledTrigger

LookupKey = tuple[str, Any]
Candidate = tuple[CompiledTrigger, bool]  # the trigger, and whether its filter is known true


@dataclass(frozen=True, slots=True)
class LeadingEquality:
    """`path == literal` at the start of a filter."""

    path: Path
    key: LookupKey
    whole: bool  # the equality is the whole filter: true once the lookup finds it


def lookup_key(value: Any) -> LookupKey | None:
    """What `value` is looked up by; None for arrays and objects, which equal no literal."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null", None)
    if isinstance(value, int | float):
        return ("number", value)
    return None


def leading_equality(expression: Expression) -> LeadingEquality | None:
    """The equality a filter starts with, when it is one this index can answer."""
    tree = expression.syntax
    # `a && b && c` evaluates `a` first and stops there when it is false.
    first, whole = (tree.clauses[0], False) if isinstance(tree, AllOf) else (tree, True)
    if not isinstance(first, Comparison) or first.operator != "eq":
        return None
    for side, literal in ((first.left, first.right), (first.right, first.left)):
        if not (isinstance(side, FieldPath) and isinstance(literal, LiteralValue)):
            continue
        value = literal.value
        if isinstance(value, float) and not math.isfinite(value):
            return None  # NaN equals nothing, not even itself
        key = lookup_key(value)
        return None if key is None else LeadingEquality(side.steps, key, whole)
    return None


@dataclass(frozen=True, slots=True)
class _PathGroup:
    path: Path
    by_key: dict[LookupKey, list[tuple[int, CompiledTrigger, bool]]]


class CandidateIndex:
    """The triggers of one event type (in their order), indexed by their leading equality."""

    def __init__(self, triggers: Sequence[CompiledTrigger]) -> None:
        self.triggers = tuple(triggers)
        self._always: list[tuple[int, CompiledTrigger]] = []
        groups: dict[Path, _PathGroup] = {}
        for position, compiled in enumerate(self.triggers):
            equality = None if compiled.filter is None else leading_equality(compiled.filter)
            if equality is None:
                self._always.append((position, compiled))
                continue
            group = groups.setdefault(equality.path, _PathGroup(equality.path, {}))
            group.by_key.setdefault(equality.key, []).append((position, compiled, equality.whole))
        self._groups = tuple(groups.values())

    def __len__(self) -> int:
        return len(self.triggers)

    def candidates(self, document: Mapping[str, Any]) -> list[Candidate]:
        """The triggers that may match `document`, in order; True when the filter is known
        to be true (its whole filter is the equality the lookup just found)."""
        found: list[tuple[int, CompiledTrigger, bool]] = [
            (position, compiled, False) for position, compiled in self._always
        ]
        for group in self._groups:
            key = lookup_key(walk(document, group.path))
            if key is not None:
                found.extend(group.by_key.get(key, ()))
        if len(self._groups) + bool(self._always) > 1:
            found.sort(key=lambda hit: hit[0])
        return [(compiled, known) for _, compiled, known in found]
