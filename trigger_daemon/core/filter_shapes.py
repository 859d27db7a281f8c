"""Which clause of a filter the candidate index (core.prefilter) answers, and how.

A filter is a conjunction `c1 && c2 && ... && cn` (one clause when there is no `&&`). It is
true only when every clause is truthy, so a clause the event makes falsy rules the trigger out,
provided nothing before that clause can raise: JMESPath evaluates the clauses left to right
and stops at the first falsy one, so a failure there (a filter failure, logged and counted)
would come before the falsy clause is reached. A clause is therefore usable when every clause
before it cannot fail (`cannot_fail`).

The clauses the index answers read one key: a plain path, or `to_number(path)`. Their tests:

    EqualsAny    `key == lit`, `key == 'a' || key == 'b'`   JMESPath equality (1 == 1.0, 1 != true)
    ContainedIn  `contains(['a', 'b'], key)`                Python's `in`, as jmespath does it
                                                            (so `contains([`1`], key)` holds for
                                                            true)
    NotEqual     `key != lit`                               anything but
    Prefix       `starts_with(path, 'lit')`                 raises when the value is not a string
    NumberRange  `key > N`, `key <= N`, ... and the conjunction of such clauses on one key;
                 true only for numbers (booleans are not), per the specification
    Truthiness   `key` (truthy) and `!key` (falsy)

Of the usable clauses, the most selective kind is chosen (hash lookups first, anything-but
last); its `whole` flag says it is the entire filter, so a hit decides the match alone.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from trigger_daemon.core.expression_syntax import (
    AllOf,
    AnyOf,
    Comparator,
    Comparison,
    FieldPath,
    FunctionCall,
    ListOf,
    LiteralValue,
    Not,
    SyntaxNode,
)
from trigger_daemon.core.paths import Path

LookupKey = tuple[str, Any]  # a value as JMESPath equality sees it: ("number", 1) for 1 and 1.0


def lookup_key(value: Any) -> LookupKey | None:
    """What `value` is looked up by; None for arrays and objects, which equal no scalar."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null", None)
    if isinstance(value, int | float):
        return ("number", value)
    return None


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where a clause reads its key: the value at `path`, or `to_number()` of it."""

    path: Path
    to_number: bool = False


@dataclass(frozen=True, slots=True)
class EqualsAny:
    keys: frozenset[LookupKey]


@dataclass(frozen=True, slots=True)
class ContainedIn:
    values: frozenset[Hashable]  # scalars, compared by Python's ==


@dataclass(frozen=True, slots=True)
class NotEqual:
    key: LookupKey


@dataclass(frozen=True, slots=True)
class Prefix:
    prefix: str


@dataclass(frozen=True, slots=True)
class Bound:
    value: int | float  # finite
    inclusive: bool


@dataclass(frozen=True, slots=True)
class NumberRange:
    lower: Bound | None
    upper: Bound | None


@dataclass(frozen=True, slots=True)
class Truthiness:
    truthy: bool  # `key` when True, `!key` when False


KeyTest = EqualsAny | ContainedIn | NotEqual | Prefix | NumberRange | Truthiness


@dataclass(frozen=True, slots=True)
class IndexedClause:
    source: KeySource
    test: KeyTest
    whole: bool  # the filter is this test and nothing else


_SELECTIVITY: dict[type[KeyTest], int] = {
    EqualsAny: 0,
    ContainedIn: 0,
    Prefix: 1,
    NumberRange: 2,  # 3 when it has one bound only
    Truthiness: 4,
    NotEqual: 5,
}
_FLIPPED: dict[Comparator, Comparator] = {
    "eq": "eq",
    "ne": "ne",
    "lt": "gt",
    "lte": "gte",
    "gt": "lt",
    "gte": "lte",
}


def indexed_clause(tree: SyntaxNode) -> IndexedClause | None:
    """The clause of the filter `tree` the index answers best, or None when there is none."""
    if not isinstance(tree, AllOf):  # one clause, the most common filter
        found = key_test(tree)
        return None if found is None else IndexedClause(*found, whole=True)
    clauses = tree.clauses
    usable: list[tuple[KeySource, KeyTest]] = []
    for clause in clauses:
        found = key_test(clause)
        if found is not None:
            usable.append(found)
        if not cannot_fail(clause):
            break  # clauses after one that may raise are reached only when it did not
    if not usable:
        return None
    ranges = _merged_ranges(usable)
    choices: list[tuple[KeySource, KeyTest, int]] = [
        (source, test, 1) for source, test in usable if not isinstance(test, NumberRange)
    ]
    choices += [(source, test, used) for source, (test, used) in ranges.items()]
    source, test, used = min(choices, key=lambda choice: _rank(choice[1]))
    return IndexedClause(source, test, whole=used == len(clauses))


def _rank(test: KeyTest) -> int:
    if isinstance(test, NumberRange) and (test.lower is None or test.upper is None):
        return 3
    return _SELECTIVITY[type(test)]


def _merged_ranges(
    usable: list[tuple[KeySource, KeyTest]],
) -> dict[KeySource, tuple[NumberRange, int]]:
    """Per key, the conjunction of its range clauses (the tightest bounds) and their number."""
    merged: dict[KeySource, tuple[NumberRange, int]] = {}
    for source, test in usable:
        if not isinstance(test, NumberRange):
            continue
        if source not in merged:
            merged[source] = (test, 1)
            continue
        current, count = merged[source]
        lower = _tighter(current.lower, test.lower, upper=False)
        upper = _tighter(current.upper, test.upper, upper=True)
        merged[source] = (NumberRange(lower, upper), count + 1)
    return merged


def _tighter(first: Bound | None, second: Bound | None, *, upper: bool) -> Bound | None:
    if first is None or second is None:
        return first or second
    if first.value != second.value:
        return min(first, second, key=lambda b: b.value if upper else -b.value)
    return first if not first.inclusive else second


def key_test(clause: SyntaxNode) -> tuple[KeySource, KeyTest] | None:
    """The key and test of a clause of an indexable shape, else None."""
    if isinstance(clause, Comparison):
        return _comparison_test(clause)
    if isinstance(clause, AnyOf):
        return _either_or_test(clause)
    if isinstance(clause, Not):
        source = _key_source(clause.operand)
        return None if source is None else (source, Truthiness(False))
    if isinstance(clause, FunctionCall) and clause.name in ("contains", "starts_with"):
        return _function_test(clause)
    source = _key_source(clause)
    return None if source is None else (source, Truthiness(True))


def _key_source(node: SyntaxNode) -> KeySource | None:
    if isinstance(node, FieldPath):
        return KeySource(node.steps)
    if (
        isinstance(node, FunctionCall)
        and node.name == "to_number"
        and len(node.arguments) == 1
        and isinstance(node.arguments[0], FieldPath)
    ):
        return KeySource(node.arguments[0].steps, to_number=True)
    return None


def _comparison_test(clause: Comparison) -> tuple[KeySource, KeyTest] | None:
    operator, key_side, literal = clause.operator, clause.left, clause.right
    if isinstance(key_side, LiteralValue):
        operator, key_side, literal = _FLIPPED[operator], clause.right, clause.left
    source = _key_source(key_side)
    if source is None or not isinstance(literal, LiteralValue):
        return None
    value = literal.value
    if operator in ("eq", "ne"):
        key = _scalar_key(value)
        if key is None:
            return None
        return source, EqualsAny(frozenset((key,))) if operator == "eq" else NotEqual(key)
    if not _is_finite_number(value):
        return None  # a comparison with a non-number is always null: rare, left to evaluation
    bound = Bound(value, inclusive=operator in ("lte", "gte"))
    return source, NumberRange(bound, None) if operator in ("gt", "gte") else NumberRange(
        None, bound
    )


def _either_or_test(clause: AnyOf) -> tuple[KeySource, KeyTest] | None:
    """`key == 'a' || key == 'b' || ...`: true when any equality holds."""
    tests = [
        _comparison_test(alternative) if isinstance(alternative, Comparison) else None
        for alternative in clause.alternatives
    ]
    keys: set[LookupKey] = set()
    sources: set[KeySource] = set()
    for found in tests:
        if found is None or not isinstance(found[1], EqualsAny):
            return None
        sources.add(found[0])
        keys.update(found[1].keys)
    return (sources.pop(), EqualsAny(frozenset(keys))) if len(sources) == 1 else None


def _function_test(clause: FunctionCall) -> tuple[KeySource, KeyTest] | None:
    if len(clause.arguments) != 2:
        return None
    first, second = clause.arguments
    if clause.name == "starts_with":
        literal = second.value if isinstance(second, LiteralValue) else None
        if isinstance(first, FieldPath) and isinstance(literal, str):
            return KeySource(first.steps), Prefix(literal)
        return None
    source, items = _key_source(second), _literal_list(first)
    if source is None or items is None:
        return None  # `contains` of a string subject is a substring test (and raises for others)
    if not all(_scalar_key(item) is not None for item in items):
        return None
    return source, ContainedIn(frozenset(items))


def _literal_list(node: SyntaxNode) -> list[Any] | None:
    """The items of a literal array: `` `["a", 1]` ``, or `['a', `1`]` (a multi-select list of
    literals, which is that array since a filter's document is never null)."""
    if isinstance(node, LiteralValue):
        return node.value if isinstance(node.value, list) else None
    if isinstance(node, ListOf) and all(isinstance(item, LiteralValue) for item in node.items):
        return [item.value for item in node.items if isinstance(item, LiteralValue)]
    return None


def _scalar_key(value: Any) -> LookupKey | None:
    """The key of a literal the index can look up: a scalar, and no NaN (equal to nothing)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return lookup_key(value)


def _is_finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not isinstance(value, float) or math.isfinite(value)


def cannot_fail(node: SyntaxNode) -> bool:
    """Whether evaluating `node` can never raise, whatever the event.

    Comparisons yield a value for any operands (ordering ones null for non-numbers); one side
    must be a literal, so comparing never recurses into an event's deep structures. Paths,
    `!`, `to_number()` and `contains()` of a literal array accept anything."""
    if isinstance(node, FieldPath | LiteralValue):
        return True
    if isinstance(node, ListOf):
        return all(cannot_fail(item) for item in node.items)
    if isinstance(node, Comparison):
        sides = (node.left, node.right)
        return any(isinstance(side, LiteralValue) for side in sides) and all(
            cannot_fail(side) for side in sides
        )
    if isinstance(node, AllOf | AnyOf):
        parts = node.clauses if isinstance(node, AllOf) else node.alternatives
        return all(cannot_fail(part) for part in parts)
    if isinstance(node, Not):
        return cannot_fail(node.operand)
    if isinstance(node, FunctionCall):
        return _function_cannot_fail(node)
    return False


def _function_cannot_fail(call: FunctionCall) -> bool:
    arguments = call.arguments
    if call.name == "to_number" and len(arguments) == 1:
        return cannot_fail(arguments[0])
    if call.name == "contains" and len(arguments) == 2:
        subject, search = arguments
        return _literal_list(subject) is not None and cannot_fail(search)
    return False
