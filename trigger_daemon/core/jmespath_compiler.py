"""JMESPath compiled into Python closures, once per expression, answering as the interpreter does.

core.expressions' interpreter walks jmespath's syntax tree on every evaluation: one dict lookup,
one method dispatch and one step count per node. Here each node becomes a closure once, when a
trigger is loaded, holding its children's closures and its constants; evaluating calls them.
Every closure takes (value, run): `run` is the evaluation's Budget, its step count and the
weights of the values it built (None when the tree has no loop and builds nothing, so plain
paths and comparisons allocate nothing).

The answers and errors are the interpreter's: the same spec-exact comparisons (an ordering
comparison of non-numbers is null), the same truthiness, jmespath's own functions with their
own errors (core.jmespath_functions). The bounds (core.expression_bounds) are kept more cheaply
(core.jmespath_loops says how), so near them the engines can differ: the compiled one stops a
loop that the interpreter would finish just under MAX_EVALUATION_STEPS, and answers a filter
over an array of the event itself weighing more than MAX_VALUE_WEIGHT, where the interpreter
stops (tests pin both). Work outside loops is bounded by the tree's size, which compilation
bounds (core.expression_checks).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from jmespath.visitor import TreeInterpreter

from trigger_daemon.core import jmespath_loops as loops
from trigger_daemon.core.expression_bounds import Budget
from trigger_daemon.core.jmespath_loops import CompileChild, Compiled, Node, is_false

Evaluate = Callable[[Any], Any]
# jmespath's equality: `==`, except that 0 and 1 never equal false and true.
_equals = TreeInterpreter.COMPARATOR_FUNC["eq"]

_BUILDING_NODES = frozenset(
    {
        "projection",
        "value_projection",
        "filter_projection",
        "flatten",
        "multi_select_list",
        "multi_select_dict",
        "function_expression",
    }
)
_NUMBERS = (int, float)
Compare = Callable[[Any, Any], bool]
_ORDERINGS: dict[str, Compare] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


class NotCompilable(Exception):
    """A syntax tree holding a node this compiler does not know: the interpreter evaluates it."""


def compile_tree(tree: Node) -> Evaluate:
    """A function of the document giving what the interpreter gives for `tree`; raises
    NotCompilable for a node it does not know."""
    root = _compile(tree)
    if not any(node["type"] in _BUILDING_NODES for node in loops.nodes(tree)):
        return lambda document: root(document, None)
    return lambda document: root(document, Budget())


def _compile(node: Node) -> Compiled:
    builder = _BUILDERS.get(node["type"])
    if builder is None:
        raise NotCompilable(f"unsupported expression node {node['type']!r}")
    return builder(node, _compile)


# --- paths -----------------------------------------------------------------------------------


def _path_steps(node: Node) -> list[str | int] | None:
    """The fields and indexes of a chain made of nothing else (`a.b[0].c`), or None."""
    kind = node["type"]
    if kind == "field":
        return [node["value"]]
    if kind == "index":
        return [node["value"]]
    if kind in ("subexpression", "index_expression"):
        steps: list[str | int] = []
        for child in node["children"]:
            child_steps = _path_steps(child)
            if child_steps is None:
                return None
            steps.extend(child_steps)
        return steps
    return None


def _path(steps: list[str | int]) -> Compiled:
    """The value at `steps`, null where a field of a non-object or an index of a non-array (or
    out of range) is asked for. One and two fields, the most common, have their own closure."""
    if all(isinstance(step, str) for step in steps) and len(steps) <= 2:
        return _field(*steps) if len(steps) == 1 else _field_of_field(*steps)
    return _walk(tuple(steps))


def _field(key: str | int) -> Compiled:
    def field(value: Any, run: Budget | None) -> Any:
        try:
            return value.get(key)
        except AttributeError:
            return None

    return field


def _field_of_field(outer: str | int, inner: str | int) -> Compiled:
    def field_of_field(value: Any, run: Budget | None) -> Any:
        try:
            return value.get(outer).get(inner)
        except AttributeError:  # either is not an object (null included)
            return None

    return field_of_field


def _walk(path: tuple[str | int, ...]) -> Compiled:
    # Each step (a field's name or an index) with whether it is a field, decided once rather
    # than at every evaluation.
    steps: tuple[tuple[Any, bool], ...] = tuple((step, isinstance(step, str)) for step in path)

    def walk(value: Any, run: Budget | None) -> Any:
        for step, is_field in steps:
            if is_field:
                try:
                    value = value.get(step)
                except AttributeError:
                    return None
            elif isinstance(value, list):
                try:
                    value = value[step]
                except IndexError:
                    return None
            else:
                return None
        return value

    return walk


def _chain(node: Node, compile_child: CompileChild) -> Compiled:
    """subexpression, index_expression and pipe: each child applied to the previous result."""
    steps = _path_steps(node)
    if steps is not None:
        return _path(steps)
    children = [compile_child(child) for child in node["children"]]
    if len(children) == 2:
        first, second = children

        def pair(value: Any, run: Budget | None) -> Any:
            return second(first(value, run), run)

        return pair

    def chain(value: Any, run: Budget | None) -> Any:
        for child in children:
            value = child(value, run)
        return value

    return chain


def _path_node(node: Node, compile_child: CompileChild) -> Compiled:
    """A field or an index node alone."""
    return _path([node["value"]])


def _slice(node: Node, compile_child: CompileChild) -> Compiled:
    part = slice(*node["children"])

    def sliced(value: Any, run: Budget | None) -> Any:
        return value[part] if isinstance(value, list) else None

    return sliced


def _current(node: Node, compile_child: CompileChild) -> Compiled:
    def current(value: Any, run: Budget | None) -> Any:
        return value

    return current


def _literal(node: Node, compile_child: CompileChild) -> Compiled:
    constant = node["value"]

    def literal(value: Any, run: Budget | None) -> Any:
        return constant

    return literal


# --- comparisons and logic -------------------------------------------------------------------


def _comparator(node: Node, compile_child: CompileChild) -> Compiled:
    operator_ = node["value"]
    left_node, right_node = node["children"]
    left, right = compile_child(left_node), compile_child(right_node)
    if operator_ in ("eq", "ne"):
        return _equality(left, right, right_node, negated=operator_ == "ne")
    compare = _ORDERINGS[operator_]
    constant = right_node.get("value")
    if right_node["type"] != "literal" or not _is_number(constant):
        return _ordering(compare, left, right)
    if left_node["type"] == "field":
        return _field_ordered_against(left_node["value"], compare, constant)
    return _ordered_against(left, compare, constant)


def _equality(left: Compiled, right: Compiled, right_node: Node, *, negated: bool) -> Compiled:
    if right_node["type"] == "literal" and isinstance(right_node["value"], str):
        # jmespath's _equals is `==` whenever one side is a string.
        text = right_node["value"]
        if negated:
            return lambda value, run: left(value, run) != text
        return lambda value, run: left(value, run) == text
    if negated:
        return lambda value, run: not _equals(left(value, run), right(value, run))
    return lambda value, run: _equals(left(value, run), right(value, run))


# An ordering comparison is null unless both sides are numbers (booleans are not). The checks
# below test the exact class first, the common case, then isinstance for subclasses.


def _ordering(compare: Compare, left: Compiled, right: Compiled) -> Compiled:
    def compared(value: Any, run: Budget | None) -> Any:
        first, second = left(value, run), right(value, run)
        if _is_number(first) and _is_number(second):
            return compare(first, second)
        return None

    return compared


def _ordered_against(left: Compiled, compare: Compare, constant: Any) -> Compiled:
    def compared_to_number(value: Any, run: Budget | None) -> Any:
        first = left(value, run)
        kind = first.__class__
        if kind is int or kind is float or (kind is not bool and isinstance(first, _NUMBERS)):
            return compare(first, constant)
        return None

    return compared_to_number


def _field_ordered_against(key: str, compare: Compare, constant: Any) -> Compiled:
    """`field < number`, the common condition of a filter, in one closure."""

    def field_compared_to_number(value: Any, run: Budget | None) -> Any:
        try:
            first = value.get(key)
        except AttributeError:
            return None
        kind = first.__class__
        if kind is int or kind is float or (kind is not bool and isinstance(first, _NUMBERS)):
            return compare(first, constant)
        return None

    return field_compared_to_number


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBERS) and value.__class__ is not bool


def _or(node: Node, compile_child: CompileChild) -> Compiled:
    left, right = (compile_child(child) for child in node["children"])

    def either(value: Any, run: Budget | None) -> Any:
        matched = left(value, run)
        return right(value, run) if is_false(matched) else matched

    return either


def _and(node: Node, compile_child: CompileChild) -> Compiled:
    left, right = (compile_child(child) for child in node["children"])

    def both(value: Any, run: Budget | None) -> Any:
        matched = left(value, run)
        return matched if is_false(matched) else right(value, run)

    return both


def _not(node: Node, compile_child: CompileChild) -> Compiled:
    (child,) = (compile_child(child) for child in node["children"])

    def negation(value: Any, run: Budget | None) -> Any:
        result = child(value, run)
        if isinstance(result, _NUMBERS) and result.__class__ is not bool and result == 0:
            return False  # !0 is false: 0 is not falsy in JMESPath
        return not result

    return negation


_BUILDERS: dict[str, Callable[[Node, CompileChild], Compiled]] = {
    "field": _path_node,
    "index": _path_node,
    "slice": _slice,
    "current": _current,
    "identity": _current,
    "literal": _literal,
    "subexpression": _chain,
    "index_expression": _chain,
    "pipe": _chain,
    "projection": loops.projection,
    "value_projection": loops.value_projection,
    "filter_projection": loops.filter_projection,
    "flatten": loops.flatten,
    "multi_select_list": loops.multi_select_list,
    "multi_select_dict": loops.multi_select_dict,
    "comparator": _comparator,
    "or_expression": _or,
    "and_expression": _and,
    "not_expression": _not,
    "expref": loops.expref,
    "function_expression": loops.function,
}
