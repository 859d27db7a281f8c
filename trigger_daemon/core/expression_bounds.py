"""The bounds every evaluation of an expression stays within, shared by both engines.

Expressions come from API callers, so none may hurt the daemon. Each evaluation may take
MAX_EVALUATION_STEPS steps (node visits), and every value it builds (multi-selects,
projections, flattening, function results) may weigh MAX_VALUE_WEIGHT, about that many bytes
as JSON, counted with shared parts expanded; `[@,@]|[@,@]|...|to_string(@)` would otherwise
double its output at each pipe. Past either bound the evaluation fails with an ExpressionError.

core.expressions' interpreter and core.jmespath_compiler's closures both raise these errors and
weigh with ValueWeights; BOUNDED_FUNCTIONS is the function table both call.
"""

from __future__ import annotations

from typing import Any

import jmespath.exceptions
import jmespath.functions

MAX_EVALUATION_STEPS = 500_000  # node visits: a second or two of work at worst
MAX_VALUE_WEIGHT = 4_000_000  # about the size as JSON of any value an evaluation builds


class ExpressionError(jmespath.exceptions.JMESPathError):
    """An expression that does not compile, or one that failed while evaluated."""


def too_many_steps() -> ExpressionError:
    return ExpressionError(
        f"evaluation stopped after {MAX_EVALUATION_STEPS} steps (is the event huge, "
        "or the expression pathological?)"
    )


def bounded_text(value: str) -> str:
    if len(value) > MAX_VALUE_WEIGHT:
        raise ExpressionError(f"evaluation stopped: a string longer than {MAX_VALUE_WEIGHT}")
    return value


class _BoundedFunctions(jmespath.functions.Functions):
    """The standard functions, except that join() refuses to build a string past the bound
    (its output can be far larger than its inputs: a long separator times many items)."""

    @jmespath.functions.signature({"types": ["string"]}, {"types": ["array-string"]})
    def _func_join(self, separator: str, array: list[str]) -> str:
        size = sum(len(item) for item in array) + len(separator) * max(len(array) - 1, 0)
        if size > MAX_VALUE_WEIGHT:
            raise ExpressionError(f"join() would build a string of {size} characters")
        return separator.join(array)


BOUNDED_FUNCTIONS = _BoundedFunctions()


class ValueWeights:
    """The weights of the values one evaluation built. Weights are memoised by identity,
    keeping each weighed value alive, so a value shared many times (`[@,@]`) is walked once
    and its repeats still count in full."""

    __slots__ = ("_memo",)

    def __init__(self) -> None:
        self._memo: dict[int, tuple[Any, int]] = {}

    def bounded(self, value: Any) -> Any:
        """`value`, or an ExpressionError when it weighs more than MAX_VALUE_WEIGHT."""
        if isinstance(value, list | dict) and self._weigh(value) > MAX_VALUE_WEIGHT:
            raise ExpressionError(
                f"evaluation stopped: a value it built would weigh more than {MAX_VALUE_WEIGHT} "
                "(bytes of JSON, about)"
            )
        if isinstance(value, str):
            return bounded_text(value)
        return value

    def _weigh(self, value: list[Any] | dict[str, Any]) -> int:
        """The JSON size of `value`, about, with shared parts counted each time (iterative)."""
        memo = self._memo
        stack: list[tuple[Any, bool]] = [(value, False)]
        while stack:
            current, children_done = stack.pop()
            if id(current) in memo:
                continue
            children = _weighted_children(current)
            if children_done:
                total = 2 + sum(extra + self._known_weight(child) for child, extra in children)
                memo[id(current)] = (current, total)
            else:
                stack.append((current, True))
                stack.extend((child, False) for child, _ in children if _is_container(child))
        return memo[id(value)][1]

    def _known_weight(self, value: Any) -> int:
        return self._memo[id(value)][1] if _is_container(value) else _scalar_weight(value)


def _is_container(value: Any) -> bool:
    return isinstance(value, list | dict)


def _weighted_children(container: Any) -> list[tuple[Any, int]]:
    """Each child with what it adds besides itself: its key and punctuation."""
    if isinstance(container, dict):
        return [(child, len(key) + 3) for key, child in container.items()]
    return [(child, 1) for child in container]


def _scalar_weight(value: Any) -> int:
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() // 3 + 1  # decimal digits, over-estimated
    return 5  # true, false, null, a float (its repr is at most 24 characters)


class Budget:
    """One evaluation's budget: the steps charged so far and the weights of what it built."""

    __slots__ = ("_weights", "steps")

    def __init__(self) -> None:
        self.steps = 0
        self._weights: ValueWeights | None = None

    def charge(self, steps: int) -> None:
        self.steps += steps
        if self.steps > MAX_EVALUATION_STEPS:
            raise too_many_steps()

    def bounded(self, value: Any) -> Any:
        if value.__class__ is str:  # weighed by its length: no memo needed
            return bounded_text(value)
        if self._weights is None:
            self._weights = ValueWeights()
        return self._weights.bounded(value)
