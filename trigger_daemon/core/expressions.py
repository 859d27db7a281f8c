"""JMESPath as the daemon uses it: compiled once, evaluated against one document per event.

The document is the envelope plus a key `event` holding the payload, so both Formance-style
filters (`event.status == 'SUCCEEDED'`) and envelope paths (`type`, `payload.amount`) work.

Ordering comparisons follow the JMESPath specification: when either side is not a number the
result is null. The `jmespath` package raises TypeError for `'a' < 1` instead (an open upstream
bug), so the interpreter below overrides that one node type.

Expressions come from API callers, so none may hurt the daemon. At compile time their length,
nesting and tree depth are bounded (core.expression_checks), so compiling and evaluating never
recurse deeply. While evaluating, each evaluation may take MAX_EVALUATION_STEPS node visits,
and every value it builds (multi-selects, projections, flattening, function results) may weigh
MAX_VALUE_WEIGHT, about that many bytes as JSON, counted with shared parts expanded;
`[@,@]|[@,@]|...|to_string(@)` would otherwise double its output at each pipe. Past either
bound the evaluation fails with an ExpressionError: a filter does not match, a var fails, and
the next event goes on.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.functions
import jmespath.visitor

from trigger_daemon.core.events import Envelope
from trigger_daemon.core.expression_checks import describe_parse_error, source_problem, tree_problem
from trigger_daemon.core.expression_syntax import FieldPath, FunctionCall, SyntaxNode, syntax_node
from trigger_daemon.core.paths import Path, walk

_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}
MAX_EVALUATION_STEPS = 500_000  # node visits: a second or two of work at worst
MAX_VALUE_WEIGHT = 4_000_000  # about the size as JSON of any value an evaluation builds


class ExpressionError(jmespath.exceptions.JMESPathError):
    """An expression that does not compile, or one that failed while evaluated."""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _SpecInterpreter(jmespath.visitor.TreeInterpreter):
    """TreeInterpreter whose ordering comparisons yield null for non-numbers, per the spec."""

    def visit_comparator(self, node: Any, value: Any) -> Any:
        compare = _ORDERING.get(node["value"])
        if compare is None:
            return super().visit_comparator(node, value)
        left = self.visit(node["children"][0], value)
        right = self.visit(node["children"][1], value)
        if not (_is_number(left) and _is_number(right)):
            return None
        return compare(left, right)


class _BoundedFunctions(jmespath.functions.Functions):
    """The standard functions, except that join() refuses to build a string past the bound
    (its output can be far larger than its inputs: a long separator times many items)."""

    @jmespath.functions.signature({"types": ["string"]}, {"types": ["array-string"]})
    def _func_join(self, separator: str, array: list[str]) -> str:
        size = sum(len(item) for item in array) + len(separator) * max(len(array) - 1, 0)
        if size > MAX_VALUE_WEIGHT:
            raise ExpressionError(f"join() would build a string of {size} characters")
        return separator.join(array)


_FUNCTIONS_INSTANCE = _BoundedFunctions()
_FUNCTIONS: Mapping[str, Any] = _FUNCTIONS_INSTANCE.FUNCTION_TABLE


class _Evaluation(_SpecInterpreter):
    """One evaluation: counts node visits and weighs every value it builds (see the module
    docstring). Weights are memoised by identity, keeping each weighed value alive, so a value
    shared many times (`[@,@]`) is walked once and its repeats still count in full."""

    def __init__(self) -> None:
        super().__init__(jmespath.visitor.Options(custom_functions=_FUNCTIONS_INSTANCE))
        self._steps = 0
        self._weights: dict[int, tuple[Any, int]] = {}

    def visit(self, node: Any, *args: Any, **kwargs: Any) -> Any:
        self._steps += 1
        if self._steps > MAX_EVALUATION_STEPS:
            raise ExpressionError(
                f"evaluation stopped after {MAX_EVALUATION_STEPS} steps (is the event huge, "
                "or the expression pathological?)"
            )
        method = _DISPATCH.get(node["type"])
        if method is None:
            raise ExpressionError(f"unsupported expression node {node['type']!r}")
        return method(self, node, *args, **kwargs)

    def _bounded(self, value: Any) -> Any:
        if _is_container(value) and self._weigh(value) > MAX_VALUE_WEIGHT:
            raise ExpressionError(
                f"evaluation stopped: a value it built would weigh more than {MAX_VALUE_WEIGHT} "
                "(bytes of JSON, about)"
            )
        if isinstance(value, str) and len(value) > MAX_VALUE_WEIGHT:
            raise ExpressionError(f"evaluation stopped: a string longer than {MAX_VALUE_WEIGHT}")
        return value

    def _weigh(self, value: list[Any] | dict[str, Any]) -> int:
        """The JSON size of `value`, about, with shared parts counted each time (iterative)."""
        memo = self._weights
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
        return self._weights[id(value)][1] if _is_container(value) else _scalar_weight(value)

    def visit_multi_select_list(self, node: Any, value: Any) -> Any:
        return self._bounded(super().visit_multi_select_list(node, value))

    def visit_multi_select_dict(self, node: Any, value: Any) -> Any:
        return self._bounded(super().visit_multi_select_dict(node, value))

    def visit_flatten(self, node: Any, value: Any) -> Any:
        return self._bounded(super().visit_flatten(node, value))

    def visit_projection(self, node: Any, value: Any) -> Any:
        return self._bounded(super().visit_projection(node, value))

    def visit_value_projection(self, node: Any, value: Any) -> Any:
        return self._bounded(super().visit_value_projection(node, value))

    def visit_filter_projection(self, node: Any, value: Any) -> Any:
        return self._bounded(super().visit_filter_projection(node, value))

    def visit_function_expression(self, node: Any, value: Any) -> Any:
        return self._bounded(super().visit_function_expression(node, value))


_DISPATCH: dict[str, Callable[..., Any]] = {
    name.removeprefix("visit_"): getattr(_Evaluation, name)
    for name in dir(_Evaluation)
    if name.startswith("visit_")
}


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


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled JMESPath expression and its source text."""

    source: str
    _ast: Any  # jmespath's parsed tree, which the interpreter walks
    # The same tree as typed nodes, for code that reasons about what the expression tests.
    syntax: SyntaxNode = field(compare=False, repr=False)
    # How a plain path, alone or in to_string(), is answered without the interpreter.
    _shortcut: Callable[[Any], Any] | None = field(default=None, compare=False, repr=False)

    def evaluate(self, document: Mapping[str, Any]) -> Any:
        """Evaluate; any failure (a function given the wrong type, ...) is an ExpressionError."""
        if self._shortcut is not None:
            value = self._shortcut(document)
            if value is not _INTERPRET:
                return value
        try:
            return _Evaluation().visit(self._ast, document)
        except ExpressionError:
            raise
        except jmespath.exceptions.JMESPathError as exc:
            raise ExpressionError(str(exc)) from exc
        except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
            raise ExpressionError(f"{type(exc).__name__}: {exc}") from exc


def compile_expression(source: str) -> Expression:
    """Compile `source`, or raise ExpressionError with a message a person can act on."""
    problem = source_problem(source)
    if problem is not None:
        raise ExpressionError(problem)
    try:
        ast = jmespath.compile(source).parsed
    except jmespath.exceptions.JMESPathError as exc:
        raise ExpressionError(describe_parse_error(exc)) from exc
    except RecursionError as exc:
        raise ExpressionError("the expression is nested too deeply") from exc
    problem = tree_problem(ast, _FUNCTIONS)
    if problem is not None:
        raise ExpressionError(problem)
    syntax = syntax_node(ast)
    return Expression(source=source, _ast=ast, syntax=syntax, _shortcut=_shortcut(syntax))


# Vars are mostly `event.x.y` or `to_string(event.x.y)`: walked directly (core.paths), they cost
# a tenth of an interpreted evaluation, with the same answer (a unit test compares the two).
_INTERPRET = object()  # the shortcut's "ask the interpreter": it would build a container


def _shortcut(tree: SyntaxNode) -> Callable[[Any], Any] | None:
    if isinstance(tree, FieldPath):
        return functools.partial(_walked, tree.steps)
    if isinstance(tree, FunctionCall) and tree.name == "to_string":
        (argument,) = tree.arguments  # the arity was checked at compile time
        if isinstance(argument, FieldPath):
            return functools.partial(_walked_to_string, argument.steps)
    return None


def _walked(path: Path, document: Any) -> Any:
    return walk(document, path)


def _walked_to_string(path: Path, document: Any) -> Any:
    """to_string() of the value at `path`: JSON text for scalars, as jmespath writes it. An
    array or object goes to the interpreter, which weighs the text it builds."""
    value = walk(document, path)
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return _INTERPRET
    return json.dumps(value)  # a scalar: null, true, 12, 1.5


def document_for(envelope: Envelope) -> dict[str, Any]:
    """The document filters and vars are evaluated against: the envelope plus `event`."""
    return {**envelope.raw, "event": envelope.payload}


def is_truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; all else (0 too) is true."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def render_value(value: Any) -> str:
    """A var's string form: strings as is, exact integers, JSON floats, true/false, compact JSON.

    Raises ExpressionError for null, which means the expression found nothing.
    """
    if value is None:
        raise ExpressionError("the expression yielded null (is the field missing from the event?)")
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
