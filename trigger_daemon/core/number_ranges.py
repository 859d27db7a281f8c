"""Numeric ranges indexed so that a number finds the ranges holding it in O(log n + k).

A range has a lower bound, an upper bound or both (core.filter_shapes.NumberRange), each
inclusive or not. Ranges with one bound are two sorted lists of bounds: a number holds in a
prefix of the lower bounds and a suffix of the upper bounds, found by bisection. Ranges with
both bounds go in a centred interval tree: each node keeps the ranges that hold its centre
(sorted by lower and by upper bound), the ranges wholly below it go left and those wholly
above it go right, so a query walks one branch of O(log n) nodes and at each node takes a
prefix or a suffix, which holds the number. The centre is the median of the node's bounds,
so each branch holds at most half of its node's ranges; a node also knows the span of its
subtree, so a number outside it stops the walk.

Comparisons between Python ints and floats are exact, as in JMESPath's evaluation, so bounds
of either type mix in one sorted list. The caller passes numbers only, never NaN.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from trigger_daemon.core.filter_shapes import Bound, NumberRange

Item = TypeVar("Item")
Number = int | float


class _SortedBounds(Generic[Item]):
    """Bounds sorted by value, each with its item."""

    def __init__(self, bounds: Iterable[tuple[Bound, Item]]) -> None:
        ordered = sorted(bounds, key=lambda entry: entry[0].value)
        self.values = [bound.value for bound, _ in ordered]
        self.items = [item for _, item in ordered]
        self.inclusive = [bound.inclusive for bound, _ in ordered]

    def held_as_lower(self, value: Number, found: list[Item]) -> None:
        """The items whose bound, as a lower bound, `value` satisfies."""
        values = self.values
        below = bisect_left(values, value)
        if below:
            found.extend(self.items[:below])
        if below < len(values) and values[below] == value:
            self._add_equal(below, bisect_right(values, value, below), found)

    def held_as_upper(self, value: Number, found: list[Item]) -> None:
        """The items whose bound, as an upper bound, `value` satisfies."""
        values = self.values
        above = bisect_right(values, value)
        if above < len(values):
            found.extend(self.items[above:])
        if above and values[above - 1] == value:
            self._add_equal(bisect_left(values, value, 0, above), above, found)

    def _add_equal(self, start: int, stop: int, found: list[Item]) -> None:
        # The bounds equal to the value hold only when inclusive.
        found.extend(self.items[i] for i in range(start, stop) if self.inclusive[i])


def holds(number_range: NumberRange, value: Number) -> bool:
    lower, upper = number_range.lower, number_range.upper
    if lower is not None and not (
        lower.value < value or (lower.inclusive and lower.value == value)
    ):
        return False
    return upper is None or upper.value > value or (upper.inclusive and upper.value == value)


def is_empty(number_range: NumberRange) -> bool:
    lower, upper = number_range.lower, number_range.upper
    if lower is None or upper is None:
        return False
    if lower.value != upper.value:
        return lower.value > upper.value
    return not (lower.inclusive and upper.inclusive)


Interval = tuple[Bound, Bound, Item]  # a range with both bounds, and its item


@dataclass(slots=True)
class _Node(Generic[Item]):
    centre: Number
    lowest: Number  # the bounds of all the intervals in this subtree
    highest: Number
    intervals: list[Interval[Item]]  # those holding the centre
    by_lower: _SortedBounds[Item]
    by_upper: _SortedBounds[Item]
    below: _Node[Item] | None
    above: _Node[Item] | None


def _tree(intervals: list[Interval[Item]]) -> _Node[Item] | None:
    """The interval tree of `intervals` (recursion depth: log2 of their number)."""
    if not intervals:
        return None
    ends = sorted(bound.value for lower, upper, _ in intervals for bound in (lower, upper))
    centre = ends[len(ends) // 2]
    below, here, above = [], [], []
    for interval in intervals:
        lower, upper, _ = interval
        if upper.value < centre:
            below.append(interval)
        elif lower.value > centre:
            above.append(interval)
        else:
            here.append(interval)
    return _Node(
        centre,
        min(lower.value for lower, _, _ in intervals),
        max(upper.value for _, upper, _ in intervals),
        here,
        _SortedBounds((lower, item) for lower, _, item in here),
        _SortedBounds((upper, item) for _, upper, item in here),
        _tree(below),
        _tree(above),
    )


class NumberRanges(Generic[Item]):
    """Ranges, each with its item; `held(value, found)` adds the items whose range holds it."""

    def __init__(self, ranges: Iterable[tuple[NumberRange, Item]]) -> None:
        kept = [(r, item) for r, item in ranges if not is_empty(r)]  # an empty range holds nothing
        self._lower_only = _SortedBounds(
            (r.lower, item) for r, item in kept if r.lower is not None and r.upper is None
        )
        self._upper_only = _SortedBounds(
            (r.upper, item) for r, item in kept if r.upper is not None and r.lower is None
        )
        self._tree = _tree(
            [
                (r.lower, r.upper, item)
                for r, item in kept
                if r.lower is not None and r.upper is not None
            ]
        )

    def held(self, value: Number, found: list[Item]) -> None:
        if self._lower_only.values:
            self._lower_only.held_as_lower(value, found)
        if self._upper_only.values:
            self._upper_only.held_as_upper(value, found)
        node = self._tree
        while node is not None and node.lowest <= value <= node.highest:
            if value < node.centre:  # the node's intervals reach above the value: lower bounds
                node.by_lower.held_as_lower(value, found)
                node = node.below
            elif value > node.centre:
                node.by_upper.held_as_upper(value, found)
                node = node.above
            else:
                found.extend(
                    item
                    for lower, upper, item in node.intervals
                    if holds(NumberRange(lower, upper), value)
                )
                return
