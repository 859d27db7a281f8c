"""A number finds exactly the ranges that hold it: one-sided or two-sided, inclusive or not,
int or float bounds, empty ranges included."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_daemon.core.filter_shapes import Bound, NumberRange
from trigger_daemon.core.number_ranges import NumberRanges, holds

# Few distinct values, so bounds often tie with each other and with the numbers looked up.
NUMBERS = st.sampled_from([-2, -1, -0.5, 0, 0.0, 1, 1.0, 1.5, 2, 3, 2**53, 2.0**53, 2**53 + 1])
bound = st.builds(Bound, NUMBERS, st.booleans())
number_range = st.builds(NumberRange, st.none() | bound, st.none() | bound).filter(
    lambda r: r.lower is not None or r.upper is not None
)


def in_range(number_range: NumberRange, value: float) -> bool:
    """What the filter's comparisons say, clause by clause."""
    lower, upper = number_range.lower, number_range.upper
    above = lower is None or (value >= lower.value if lower.inclusive else value > lower.value)
    below = upper is None or (value <= upper.value if upper.inclusive else value < upper.value)
    return above and below


@settings(max_examples=300, deadline=None)
@given(ranges=st.lists(number_range, max_size=40), values=st.lists(NUMBERS, min_size=1))
def test_a_number_finds_exactly_the_ranges_holding_it(
    ranges: list[NumberRange], values: list[float]
) -> None:
    index = NumberRanges((r, n) for n, r in enumerate(ranges))
    for value in values:
        found: list[int] = []
        index.held(value, found)

        assert Counter(found) == Counter(n for n, r in enumerate(ranges) if in_range(r, value))


@pytest.mark.parametrize(
    ("number_range", "value", "held"),
    [
        (NumberRange(Bound(1, False), None), 1, False),
        (NumberRange(Bound(1, True), None), 1.0, True),
        (NumberRange(None, Bound(1.0, False)), 1, False),
        (NumberRange(None, Bound(1.0, True)), 1, True),
        (NumberRange(Bound(2**53, False), None), 2**53 + 1, True),  # exact, unlike 2.0**53 + 1
        (NumberRange(Bound(1, True), Bound(1, True)), 1, True),
        (NumberRange(Bound(1, True), Bound(1, False)), 1, False),
        (NumberRange(Bound(2, True), Bound(1, True)), 1.5, False),
    ],
)
def test_bounds_hold_exactly_by_their_inclusiveness(
    number_range: NumberRange, value: float, held: bool
) -> None:
    found: list[str] = []
    NumberRanges([(number_range, "r")]).held(value, found)

    assert holds(number_range, value) is held is in_range(number_range, value)
    assert found == (["r"] if held else [])


def test_ten_thousand_disjoint_ranges_give_the_one_holding_the_number() -> None:
    ranges = [
        (NumberRange(Bound(10 * n, False), Bound(10 * n + 5, True)), n) for n in range(10_000)
    ]
    found: list[int] = []

    NumberRanges(ranges).held(42_345, found)

    assert found == [4234]
