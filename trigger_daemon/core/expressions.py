"""JMESPath as the daemon uses it: compiled once, evaluated against one document per event.

The document is the envelope plus a key `event` holding the payload, so both Formance-style
filters (`event.status == 'SUCCEEDED'`) and envelope paths (`type`, `payload.amount`) work.

Ordering comparisons follow the JMESPath specification: when either side is not a number the
result is null. The `jmespath` package raises TypeError for `'a' < 1` instead (an open upstream
bug), so the interpreter below overrides that one node type.

Expressions come from API callers, so none may hurt the daemon. At compile time their length,
nesting and tree depth are bounded (core.expression_checks), so compiling and evaluating never
recurse deeply; while evaluating, core.expression_bounds' steps and value weights hold. Past
either bound the evaluation fails with an ExpressionError: a filter does not match, a var
fails, and the next event goes on.

Each expression is compiled into Python closures (core.jmespath_compiler), about ten times
faster than the interpreter, with the same answers and errors (the compliance suite and a
differential test compare the two); one the compiler cannot take is interpreted, and
`Expression.compiled` says which.
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
import jmespath.visitor

from trigger_daemon.core.events import Envelope
from trigger_daemon.core.expression_bounds import BOUNDED_FUNCTIONS, ValueWeights, too_many_steps

# Re-exported: callers know the error and the step bound from here.
from trigger_daemon.core.expression_bounds import MAX_EVALUATION_STEPS as MAX_EVALUATION_STEPS
from trigger_daemon.core.expression_bounds import ExpressionError as ExpressionError
from trigger_daemon.core.expression_checks import describe_parse_error, source_problem, tree_problem
from trigger_daemon.core.expression_syntax import FieldPath, FunctionCall, SyntaxNode, syntax_node
from trigger_daemon.core.jmespath_compiler import NotCompilable, compile_tree
from trigger_daemon.core.paths import Path, walk

_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}
_FUNCTIONS: Mapping[str, Any] = BOUNDED_FUNCTIONS.FUNCTION_TABLE


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


class _Evaluation(_SpecInterpreter):
    """One interpreted evaluation: counts node visits and weighs every value it builds."""

    def __init__(self) -> None:
        super().__init__(jmespath.visitor.Options(custom_functions=BOUNDED_FUNCTIONS))
        self._steps = 0
        self._weights = ValueWeights()

    def visit(self, node: Any, *args: Any, **kwargs: Any) -> Any:
        self._steps += 1
        if self._steps > MAX_EVALUATION_STEPS:
            raise too_many_steps()
        method = _DISPATCH.get(node["type"])
        if method is None:
            raise ExpressionError(f"unsupported expression node {node['type']!r}")
        return method(self, node, *args, **kwargs)

    def visit_multi_select_list(self, node: Any, value: Any) -> Any:
        return self._weights.bounded(super().visit_multi_select_list(node, value))

    def visit_multi_select_dict(self, node: Any, value: Any) -> Any:
        return self._weights.bounded(super().visit_multi_select_dict(node, value))

    def visit_flatten(self, node: Any, value: Any) -> Any:
        return self._weights.bounded(super().visit_flatten(node, value))

    def visit_projection(self, node: Any, value: Any) -> Any:
        return self._weights.bounded(super().visit_projection(node, value))

    def visit_value_projection(self, node: Any, value: Any) -> Any:
        return self._weights.bounded(super().visit_value_projection(node, value))

    def visit_filter_projection(self, node: Any, value: Any) -> Any:
        return self._weights.bounded(super().visit_filter_projection(node, value))

    def visit_function_expression(self, node: Any, value: Any) -> Any:
        return self._weights.bounded(super().visit_function_expression(node, value))


_DISPATCH: dict[str, Callable[..., Any]] = {
    name.removeprefix("visit_"): getattr(_Evaluation, name)
    for name in dir(_Evaluation)
    if name.startswith("visit_")
}


def interpret(tree: Any, document: Any) -> Any:
    """`tree` evaluated by the interpreter (jmespath's, with the spec's comparisons)."""
    return _Evaluation().visit(tree, document)


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled JMESPath expression and its source text."""

    source: str
    _ast: Any  # jmespath's parsed tree, which the interpreter walks
    # The same tree as typed nodes, for code that reasons about what the expression tests.
    syntax: SyntaxNode = field(compare=False, repr=False)
    # How a plain path, alone or in to_string(), is answered without evaluating the tree.
    _shortcut: Callable[[Any], Any] | None = field(default=None, compare=False, repr=False)
    # The tree as Python closures (core.jmespath_compiler); None: the interpreter evaluates it.
    _compiled: Callable[[Any], Any] | None = field(default=None, compare=False, repr=False)

    @property
    def compiled(self) -> bool:
        """Whether evaluation runs compiled closures (False: jmespath's interpreter)."""
        return self._compiled is not None

    def evaluate(self, document: Mapping[str, Any]) -> Any:
        """Evaluate; any failure (a function given the wrong type, ...) is an ExpressionError."""
        if self._shortcut is not None:
            value = self._shortcut(document)
            if value is not _INTERPRET:
                return value
        try:
            if self._compiled is not None:
                return self._compiled(document)
            return interpret(self._ast, document)
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
    try:
        compiled: Callable[[Any], Any] | None = compile_tree(ast)
    except NotCompilable:
        compiled = None
    return Expression(
        source=source, _ast=ast, syntax=syntax, _shortcut=_shortcut(syntax), _compiled=compiled
    )


# Vars are mostly `event.x.y` or `to_string(event.x.y)`. The first is a compiled path; the
# second, walked directly (core.paths), costs about three quarters of its compiled evaluation,
# with the same answer (a unit test compares the two).
_INTERPRET = object()  # the shortcut's "evaluate in full": it would build a container


def _shortcut(tree: SyntaxNode) -> Callable[[Any], Any] | None:
    if isinstance(tree, FunctionCall) and tree.name == "to_string":
        (argument,) = tree.arguments  # the arity was checked at compile time
        if isinstance(argument, FieldPath):
            return functools.partial(_walked_to_string, argument.steps)
    return None


def _walked_to_string(path: Path, document: Any) -> Any:
    """to_string() of the value at `path`: JSON text for scalars, as jmespath writes it. An
    array or object is evaluated in full, which weighs the text it builds."""
    value = walk(document, path)
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return _INTERPRET
    if value.__class__ is int:  # the common scalar (an id, an amount): json.dumps writes repr
        return repr(value)
    return json.dumps(value)  # a scalar: null, true, 1.5


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
