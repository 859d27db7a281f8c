"""A typed view of a compiled expression's syntax tree, for code that reasons about filters.

jmespath parses into untyped dicts (`{"type": "comparator", "value": "eq", "children": [...]}`);
this module is the one place outside evaluation and validation that reads them. It names the
shapes the daemon acts on:

    FieldPath      a plain path of fields and indexes (`event.a[0].b`, `@`), walked directly
    LiteralValue   a literal (`'x'`, `` `1` ``, `` `null` ``), its JSON value
    Comparison     `left <op> right`, op one of eq ne lt lte gt gte
    AllOf          `a && b && c`: its clauses, left to right however the `&&` were grouped
    AnyOf          `a || b || c`: its alternatives, likewise
    Not            `!a`
    ListOf         `[a, b]`: a multi-select list (null when evaluated against null)
    FunctionCall   `name(arguments...)`
    OtherNode      anything else (projections, filters, pipes ...), by its node kind

compile_expression builds the view once, after validation; Expression.syntax holds it.

`&&` is associative in JMESPath (each side is evaluated left to right and the first falsy one
is the answer), and so is `||` (the first truthy one, else the last), so flattening their
grouping changes neither the result nor what is evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from trigger_daemon.core.paths import Path

Comparator = Literal["eq", "ne", "lt", "lte", "gt", "gte"]


@dataclass(frozen=True, slots=True)
class FieldPath:
    steps: Path


@dataclass(frozen=True, slots=True)
class LiteralValue:
    value: Any  # a JSON value: None, bool, int, float, str, list or dict


@dataclass(frozen=True, slots=True)
class Comparison:
    operator: Comparator
    left: SyntaxNode
    right: SyntaxNode


@dataclass(frozen=True, slots=True)
class AllOf:
    clauses: tuple[SyntaxNode, ...]  # two or more, none of them an AllOf


@dataclass(frozen=True, slots=True)
class AnyOf:
    alternatives: tuple[SyntaxNode, ...]  # two or more, none of them an AnyOf


@dataclass(frozen=True, slots=True)
class Not:
    operand: SyntaxNode


@dataclass(frozen=True, slots=True)
class ListOf:
    items: tuple[SyntaxNode, ...]


@dataclass(frozen=True, slots=True)
class FunctionCall:
    name: str
    arguments: tuple[SyntaxNode, ...]


@dataclass(frozen=True, slots=True)
class OtherNode:
    kind: str  # jmespath's node type, e.g. "projection", "pipe"


SyntaxNode = (
    FieldPath | LiteralValue | Comparison | AllOf | AnyOf | Not | ListOf | FunctionCall | OtherNode
)


def syntax_node(node: Mapping[str, Any]) -> SyntaxNode:
    """The typed view of a jmespath syntax tree (one already validated, so of bounded depth)."""
    kind = node["type"]
    steps = _plain_path(node)
    if steps is not None:
        return FieldPath(steps)
    if kind == "literal":
        return LiteralValue(node["value"])
    if kind == "comparator":
        left, right = node["children"]
        return Comparison(node["value"], syntax_node(left), syntax_node(right))
    if kind == "and_expression":
        return AllOf(tuple(_flattened(node, kind)))
    if kind == "or_expression":
        return AnyOf(tuple(_flattened(node, kind)))
    if kind == "not_expression":
        return Not(syntax_node(node["children"][0]))
    if kind == "multi_select_list":
        return ListOf(tuple(syntax_node(child) for child in node["children"]))
    if kind == "function_expression":
        return FunctionCall(node["value"], tuple(syntax_node(child) for child in node["children"]))
    return OtherNode(kind)


def _flattened(node: Mapping[str, Any], kind: str) -> list[SyntaxNode]:
    """The operands of a chain of `kind` (and_expression or or_expression), left to right."""
    if node["type"] != kind:
        return [syntax_node(node)]
    left, right = node["children"]
    return [*_flattened(left, kind), *_flattened(right, kind)]


def _plain_path(node: Mapping[str, Any]) -> Path | None:
    """The steps of a tree that is a plain path (fields, indexes, `@`), else None."""
    kind = node["type"]
    if kind == "field":
        return (str(node["value"]),)
    if kind == "index" and isinstance(node["value"], int):
        return (node["value"],)
    if kind == "current":
        return ()
    if kind in ("subexpression", "index_expression"):
        steps: list[str | int] = []
        for child in node["children"]:
            inner = _plain_path(child)
            if inner is None:
                return None
            steps.extend(inner)
        return tuple(steps)
    return None
