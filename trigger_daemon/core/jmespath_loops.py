"""Compiled JMESPath nodes that loop or build values: projections, flatten, multi-selects and
function calls (core.jmespath_compiler compiles the rest and dispatches here).

Each loop charges its steps to the evaluation's Budget before it runs: its elements times the
nodes evaluated per element, an upper bound of the interpreter's count of node visits. Built
values are weighed where the interpreter weighs them, except results made only of parts of
their input (a filter's `[?...]`, a projection of a path, a flatten), which weigh no more than
the input, itself weighed if the evaluation built it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from trigger_daemon.core.expression_bounds import (
    BOUNDED_FUNCTIONS,
    MAX_EVALUATION_STEPS,
    Budget,
    too_many_steps,
)
from trigger_daemon.core.jmespath_functions import compiled_call, scalar_call

Node = Mapping[str, Any]  # jmespath's parsed tree: {"type": ..., "value": ..., "children": [...]}
Compiled = Callable[[Any, Budget | None], Any]
CompileChild = Callable[[Node], Compiled]

# Nodes whose result is made of parts of their input (or null), when their children's are.
_PART_TAKING_NODES = frozenset(
    {
        "field",
        "index",
        "slice",
        "current",
        "identity",
        "subexpression",
        "index_expression",
        "pipe",
        "projection",
        "value_projection",
        "filter_projection",
        "flatten",
    }
)


def nodes(tree: Node) -> list[Node]:
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(child for child in node.get("children", ()) if isinstance(child, Mapping))
    return found


def _size(tree: Node) -> int:
    """The nodes the interpreter visits when it evaluates `tree` in full."""
    return len(nodes(tree))


def _is_part_taking(tree: Node) -> bool:
    if tree["type"] == "filter_projection":  # its condition's result is not kept
        left, right, _ = tree["children"]
        return _is_part_taking(left) and _is_part_taking(right)
    return tree["type"] in _PART_TAKING_NODES and all(
        _is_part_taking(child) for child in tree.get("children", ()) if isinstance(child, Mapping)
    )


def is_false(value: Any) -> bool:
    """The interpreter's falsiness: null, false, "", [] and {}."""
    kind = value.__class__
    return (
        value is None
        or value is False
        or ((kind is str or kind is list or kind is dict) and not value)
    )


# --- projections -----------------------------------------------------------------------------


def projection(node: Node, compile_child: CompileChild) -> Compiled:
    left, right = (compile_child(child) for child in node["children"])
    per_element = _size(node["children"][1])
    weighed = not _is_part_taking(node)

    def projection(value: Any, run: Budget | None) -> Any:
        base = left(value, run)
        if not isinstance(base, list):
            return None
        assert run is not None
        run.charge(len(base) * per_element)
        collected = []
        for element in base:
            current = right(element, run)
            if current is not None:
                collected.append(current)
        return run.bounded(collected) if weighed else collected

    return projection


def value_projection(node: Node, compile_child: CompileChild) -> Compiled:
    left, right = (compile_child(child) for child in node["children"])
    per_element = _size(node["children"][1])
    weighed = not _is_part_taking(node)

    def value_projection(value: Any, run: Budget | None) -> Any:
        base = left(value, run)
        try:
            base = base.values()
        except AttributeError:
            return None
        assert run is not None
        run.charge(len(base) * per_element)
        collected = []
        for element in base:
            current = right(element, run)
            if current is not None:
                collected.append(current)
        return run.bounded(collected) if weighed else collected

    return value_projection


def filter_projection(node: Node, compile_child: CompileChild) -> Compiled:
    left, right, condition = (compile_child(child) for child in node["children"])
    per_element = _size(node["children"][1]) + _size(node["children"][2])
    weighed = not _is_part_taking(node)
    keeps_elements = node["children"][1]["type"] == "identity"

    def filtered(value: Any, run: Budget | None) -> Any:
        base = left(value, run)
        if not isinstance(base, list):
            return None
        assert run is not None
        run.steps += len(base) * per_element  # Budget.charge, inline: filters are hot
        if run.steps > MAX_EVALUATION_STEPS:
            raise too_many_steps()
        collected = []
        for element in base:
            matched = condition(element, run)  # is_false(matched), inline: once per element
            if matched is None or matched is False:
                continue
            kind = matched.__class__
            if (kind is str or kind is list or kind is dict) and not matched:
                continue
            current = element if keeps_elements else right(element, run)
            if current is not None:
                collected.append(current)
        return run.bounded(collected) if weighed else collected

    return filtered


def flatten(node: Node, compile_child: CompileChild) -> Compiled:
    (child,) = node["children"]
    left = compile_child(child)
    weighed = not _is_part_taking(node)

    def flatten(value: Any, run: Budget | None) -> Any:
        base = left(value, run)
        if not isinstance(base, list):
            return None
        merged: list[Any] = []
        for element in base:
            if isinstance(element, list):
                merged.extend(element)
            else:
                merged.append(element)
        assert run is not None
        return run.bounded(merged) if weighed else merged

    return flatten


# --- multi-selects ---------------------------------------------------------------------------


def multi_select_list(node: Node, compile_child: CompileChild) -> Compiled:
    children = [compile_child(child) for child in node["children"]]

    def multi_select_list(value: Any, run: Budget | None) -> Any:
        if value is None:
            return None
        assert run is not None
        return run.bounded([child(value, run) for child in children])

    return multi_select_list


def multi_select_dict(node: Node, compile_child: CompileChild) -> Compiled:
    pairs = [(pair["value"], compile_child(pair["children"][0])) for pair in node["children"]]

    def multi_select_dict(value: Any, run: Budget | None) -> Any:
        if value is None:
            return None
        assert run is not None
        return run.bounded({key: child(value, run) for key, child in pairs})

    return multi_select_dict


# --- functions -------------------------------------------------------------------------------


class _Expression:
    """An `&expression` argument as jmespath's functions call it: `.visit(.expression, x)`.
    The class name is jmespath's own, which its type checks read to accept an expref."""

    __slots__ = ("_run", "_steps", "expression")

    def __init__(self, expression: Compiled, run: Budget, steps: int) -> None:
        self.expression = expression
        self._run = run
        self._steps = steps

    def visit(self, expression: Compiled, value: Any) -> Any:
        self._run.charge(self._steps)
        return expression(value, self._run)


def expref(node: Node, compile_child: CompileChild) -> Compiled:
    (body_node,) = node["children"]
    body, steps = compile_child(body_node), _size(body_node)

    def expref(value: Any, run: Budget | None) -> Any:
        assert run is not None
        return _Expression(body, run, steps)

    return expref


def function(node: Node, compile_child: CompileChild) -> Compiled:
    name = node["value"]
    arguments = [compile_child(child) for child in node["children"]]
    scalar = scalar_call(name) if len(arguments) == 1 else None
    if scalar is not None:  # its answer is a number or null: nothing to weigh
        (argument,) = arguments
        return lambda value, run: scalar(argument(value, run))
    fallback = BOUNDED_FUNCTIONS.call_function
    call = compiled_call(name, len(arguments), fallback)

    def function(value: Any, run: Budget | None) -> Any:
        result = call([argument(value, run) for argument in arguments])
        kind = result.__class__
        if kind is list or kind is dict or kind is str:
            assert run is not None
            return run.bounded(result)
        return result

    return function
