"""Both expression engines for one source, and their answers in a comparable form."""

from __future__ import annotations

import json
from typing import Any

import jmespath

from trigger_daemon.core.expression_syntax import syntax_node
from trigger_daemon.core.expressions import Expression, ExpressionError
from trigger_daemon.core.jmespath_compiler import compile_tree


def engines(source: str) -> tuple[Expression, Expression]:
    """The interpreted and the compiled engine for `source`, without the shortcut paths and
    without compile_expression's checks (so the suite's refused forms are compared too)."""
    tree = jmespath.compile(source).parsed
    interpreted = Expression(source=source, _ast=tree, syntax=syntax_node(tree))
    compiled = Expression(
        source=source, _ast=tree, syntax=syntax_node(tree), _compiled=compile_tree(tree)
    )
    return interpreted, compiled


def outcome(expression: Expression, document: Any) -> tuple[str, str]:
    """The answer, comparable: the value as JSON (1, 1.0 and true differ; key order counts), or
    the error's message."""
    try:
        return "value", json.dumps(expression.evaluate(document))
    except ExpressionError as exc:
        return "error", str(exc)
