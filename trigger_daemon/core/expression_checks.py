"""What makes an expression unacceptable at compile time, described for the person who wrote it.

Expressions come from API callers, so their size is bounded before any evaluation:
length (MAX_EXPRESSION_LENGTH), bracket nesting (MAX_NESTING) and syntax-tree depth
(MAX_TREE_DEPTH), so that compiling and evaluating never recurse deeply. Mistakes that would
otherwise fail on every event are refused too: unknown functions, wrong argument counts, and
`status == "SUCCEEDED"` (a double-quoted word is a field in JMESPath, not a string).

Each check returns the problem as a sentence, or None; core.expressions raises it as an
ExpressionError. The bounds that hold while evaluating are core.expressions' own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jmespath.exceptions
import jmespath.lexer

MAX_EXPRESSION_LENGTH = 4096
MAX_NESTING = 32  # brackets, braces and parentheses inside one another
MAX_TREE_DEPTH = 64  # a long `a.b.c...` or `x || y || ...` chain nests its syntax tree too
_OPENING = frozenset({"lbracket", "lbrace", "lparen", "filter"})
_CLOSING = frozenset({"rbracket", "rbrace", "rparen"})
_COMPARATOR_TOKENS = frozenset({"eq", "ne", "lt", "lte", "gt", "gte"})

Token = Mapping[str, Any]  # jmespath's lexer token: type, value, start, end
FunctionTable = Mapping[str, Mapping[str, Any]]  # name -> {"signature": [...], ...}


def source_problem(source: str) -> str | None:
    """What is wrong with the text itself (before parsing), or None."""
    if not source.strip():
        return "the expression is empty"
    if len(source) > MAX_EXPRESSION_LENGTH:
        return f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters"
    tokens = _tokens(source)
    if tokens is None:  # the parser reports lexer errors with their own message
        return None
    return _nesting_problem(tokens) or _quoted_identifier_comparison(tokens)


def tree_problem(ast: Mapping[str, Any], functions: FunctionTable) -> str | None:
    """What is wrong with a parsed tree: too deep, or calling a function not in `functions`
    (or with the wrong number of arguments); None when nothing is."""
    nodes = _nodes_within_depth(ast)
    if nodes is None:
        return (
            f"the expression is nested too deeply: more than {MAX_TREE_DEPTH} levels "
            "(a very long chain of |, ||, && or dots?)"
        )
    for node in nodes:
        problem = _function_problem(node, functions)
        if problem is not None:
            return problem
    return None


def describe_parse_error(exc: jmespath.exceptions.JMESPathError) -> str:
    """jmespath's parse error as one sentence with the position it happened at."""
    position = getattr(exc, "lex_position", None)
    if isinstance(exc, jmespath.exceptions.LexerError):
        what = exc.message
    elif isinstance(exc, jmespath.exceptions.IncompleteExpressionError):
        what = "incomplete expression"
    else:
        what = getattr(exc, "msg", None) or str(exc)
    return f"{what} at position {position}" if position is not None else what


def _tokens(source: str) -> list[Token] | None:
    try:
        return [
            token for token in jmespath.lexer.Lexer().tokenize(source) if token["type"] != "eof"
        ]
    except (jmespath.exceptions.JMESPathError, RecursionError, ValueError):
        return None


def _nesting_problem(tokens: list[Token]) -> str | None:
    depth = 0
    for token in tokens:
        if token["type"] in _OPENING:
            depth += 1
            if depth > MAX_NESTING:
                return (
                    f"the expression is nested too deeply: brackets nest more than {MAX_NESTING} "
                    f"levels at position {token['start']}"
                )
        elif token["type"] in _CLOSING:
            depth -= 1
    return None


def _quoted_identifier_comparison(tokens: list[Token]) -> str | None:
    """Catch `status == "SUCCEEDED"`: in JMESPath a double-quoted word is a field, not a string.

    Only a quoted identifier standing alone next to a comparator is flagged; one that is part
    of a path (`payload."my-field" == 'x'`) is a legitimate field reference.
    """
    for index, token in enumerate(tokens):
        if token["type"] != "quoted_identifier":
            continue
        before = tokens[index - 1]["type"] if index > 0 else None
        after = tokens[index + 1]["type"] if index + 1 < len(tokens) else None
        in_path = before == "dot" or after in {"dot", "lbracket", "filter", "flatten"}
        next_to_comparator = before in _COMPARATOR_TOKENS or after in _COMPARATOR_TOKENS
        if next_to_comparator and not in_path:
            word = token["value"]
            return (
                f"\"{word}\" is a field name in JMESPath, not a string; write '{word}' "
                f'for the string (or @."{word}" if you really mean a field)'
            )
    return None


def _nodes_within_depth(ast: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """Every node of the tree (iteratively), or None when it is deeper than MAX_TREE_DEPTH."""
    nodes: list[Mapping[str, Any]] = []
    stack: list[tuple[Mapping[str, Any], int]] = [(ast, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            return None
        nodes.append(node)
        stack.extend(
            (child, depth + 1) for child in node.get("children", ()) if isinstance(child, Mapping)
        )
    return nodes


def _function_problem(node: Mapping[str, Any], functions: FunctionTable) -> str | None:
    """An unknown function or a wrong argument count, found now rather than on every event."""
    if node.get("type") != "function_expression":
        return None
    name = node["value"]
    spec = functions.get(name)
    if spec is None:
        return f"unknown function {name}()"
    signature = spec["signature"]
    given = len(node["children"])
    variadic = bool(signature) and signature[-1].get("variadic", False)
    if (variadic and given < len(signature)) or (not variadic and given != len(signature)):
        wanted = f"at least {len(signature)}" if variadic else str(len(signature))
        return f"{name}() takes {wanted} argument(s), {given} given"
    return None
