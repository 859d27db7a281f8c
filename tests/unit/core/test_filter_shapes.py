"""Each indexable shape is recognised with its key, its test and whether it is the whole filter;
the index uses a clause only when nothing before it can stop the filter with a failure, and
prefers the most selective one."""

from typing import Any

import pytest

from trigger_daemon.core.expressions import compile_expression
from trigger_daemon.core.filter_shapes import (
    Bound,
    ContainedIn,
    EqualsAny,
    IndexedClause,
    KeySource,
    KeyTest,
    NotEqual,
    NumberRange,
    Prefix,
    Truthiness,
    cannot_fail,
    indexed_clause,
)

STATUS = KeySource(("event", "status"))
AMOUNT = KeySource(("event", "amount"))
AMOUNT_NUMBER = KeySource(("event", "amount"), to_number=True)


def clause(source: str) -> IndexedClause | None:
    return indexed_clause(compile_expression(source).syntax)


def above(value: float, inclusive: bool = False) -> NumberRange:
    return NumberRange(Bound(value, inclusive), None)


def below(value: float, inclusive: bool = False) -> NumberRange:
    return NumberRange(None, Bound(value, inclusive))


@pytest.mark.parametrize(
    ("filter_", "source", "test"),
    [
        ("event.status == 'x'", STATUS, EqualsAny(frozenset({("string", "x")}))),
        ("`1.0` == event.status", STATUS, EqualsAny(frozenset({("number", 1)}))),
        ("event.status == `true`", STATUS, EqualsAny(frozenset({("bool", True)}))),
        ("event.status == `null`", STATUS, EqualsAny(frozenset({("null", None)}))),
        (
            "event.a[0].b == `1`",
            KeySource(("event", "a", 0, "b")),
            EqualsAny(frozenset({("number", 1)})),
        ),
        ("event.status != 'x'", STATUS, NotEqual(("string", "x"))),
        ("`false` != event.status", STATUS, NotEqual(("bool", False))),
        ("event.amount > `10`", AMOUNT, above(10)),
        ("event.amount >= `10.5`", AMOUNT, above(10.5, inclusive=True)),
        ("event.amount < `-1`", AMOUNT, below(-1)),
        ("event.amount <= `0`", AMOUNT, below(0, inclusive=True)),
        ("`10` < event.amount", AMOUNT, above(10)),
        ("`10` >= event.amount", AMOUNT, below(10, inclusive=True)),
        (
            "event.amount > `10` && event.amount <= `100`",
            AMOUNT,
            NumberRange(Bound(10, False), Bound(100, True)),
        ),
        (
            "event.amount >= `1` && event.amount > `1` && event.amount < `5`",
            AMOUNT,
            NumberRange(Bound(1, False), Bound(5, False)),  # the tightest bounds
        ),
        ("to_number(event.amount) > `10`", AMOUNT_NUMBER, above(10)),
        ("to_number(event.amount) == `10`", AMOUNT_NUMBER, EqualsAny(frozenset({("number", 10)}))),
        ("starts_with(event.status, 'inv-')", STATUS, Prefix("inv-")),
        ("contains(['a', 'b'], event.status)", STATUS, ContainedIn(frozenset({"a", "b"}))),
        ("contains(`[1, true, null]`, event.status)", STATUS, ContainedIn(frozenset({1, None}))),
        (
            "event.status == 'a' || event.status == `2` || event.status == `null`",
            STATUS,
            EqualsAny(frozenset({("string", "a"), ("number", 2), ("null", None)})),
        ),
        ("event.status", STATUS, Truthiness(True)),
        ("!(event.status)", STATUS, Truthiness(False)),
        ("to_number(event.amount)", AMOUNT_NUMBER, Truthiness(True)),
    ],
)
def test_each_whole_filter_shape_is_indexed_by_its_key_and_test(
    filter_: str, source: KeySource, test: KeyTest
) -> None:
    assert clause(filter_) == IndexedClause(source, test, whole=True)


@pytest.mark.parametrize(
    ("filter_", "source", "test"),
    [
        # a truthy test is less selective than a range, which is less than an equality
        (
            "event.ok && event.amount > `1` && event.status == 'x'",
            STATUS,
            EqualsAny(frozenset({("string", "x")})),
        ),
        ("event.ok && event.amount > `1`", AMOUNT, above(1)),
        ("event.status != 'x' && event.ok", KeySource(("event", "ok")), Truthiness(True)),
        ("event.amount > `1` && starts_with(event.status, 'x')", STATUS, Prefix("x")),
        # a clause that cannot fail does not stop the index from using the ones after it
        (
            "event.a == `[1]` && to_number(event.b) > `1` && event.status == 'x'",
            STATUS,
            EqualsAny(frozenset({("string", "x")})),
        ),
        (
            "(!(event.a) || event.b > `1`) && event.status == 'x'",
            STATUS,
            EqualsAny(frozenset({("string", "x")})),
        ),
        # the clause that may fail can itself be used, not those after it
        (
            "starts_with(event.ref, 'x') && event.status == 'x'",
            KeySource(("event", "ref")),
            Prefix("x"),
        ),
        ("event.amount > `1` && abs(event.x) > `1` && event.status == 'x'", AMOUNT, above(1)),
    ],
)
def test_a_conjunction_is_indexed_by_its_most_selective_usable_clause(
    filter_: str, source: KeySource, test: KeyTest
) -> None:
    assert clause(filter_) == IndexedClause(source, test, whole=False)


@pytest.mark.parametrize(
    "filter_",
    [
        "abs(event.amount) > `1` && event.status == 'x'",  # may fail before the equality
        "length(event.tags) > `0`",
        "event.status == event.other",
        "event.status == `NaN`",  # equals nothing, not even itself
        "event.tags == `[1]`",
        "event.amount > 'x'",  # always null
        "event.amount > `true`",
        "event.amount > `1e999`",  # infinity
        "event.status == 'x' || event.other == 'y'",  # two keys
        "event.status == 'x' || event.status != 'y'",
        "contains('abc', event.status)",  # a substring test, failing for non-strings
        "contains(event.tags, 'x')",
        "contains(['a', event.b], event.status)",
        "contains(`[[1]]`, event.status)",
        "starts_with(event.status, event.prefix)",
        "starts_with(to_number(event.status), 'x')",
        "to_string(event.status) == 'x'",
        "event.items[*].id == 'x'",  # a projection builds a list
        "!event.status",  # `(!event).status`: always null
        "`true`",
    ],
)
def test_other_filters_are_not_indexed(filter_: str) -> None:
    assert clause(filter_) is None


@pytest.mark.parametrize(
    ("expression", "safe"),
    [
        ("event.a", True),
        ("`[1]`", True),
        ("event.a == `[1, 2]`", True),
        ("event.a < 'x'", True),  # null, not an error
        ("!(event.a) || event.b", True),
        ("to_number(event.a) > `1`", True),
        ("contains(['x', `1`], event.a)", True),
        ("event.a == event.b", False),  # compares two event values of any depth
        ("contains(event.a, 'x')", False),
        ("contains('abc', event.a)", False),
        ("starts_with(event.a, 'x')", False),
        ("abs(event.a)", False),
        ("event.a[*].b", False),
    ],
)
def test_only_shapes_that_accept_any_value_cannot_fail(expression: str, safe: bool) -> None:
    assert cannot_fail(compile_expression(expression).syntax) is safe


def test_either_or_keys_follow_jmespath_equality_and_contains_follows_python_in() -> None:
    either: Any = clause("event.s == `1` || event.s == `true`")
    contained: Any = clause("contains(`[1, true]`, event.s)")

    assert either.test.keys == {("number", 1), ("bool", True)}  # 1 and true differ
    assert contained.test.values == {1}  # `true in [1]` holds in Python
