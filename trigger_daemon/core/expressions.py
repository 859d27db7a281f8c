"""JMESPath as the daemon uses it: compiled once, evaluated against one document per event.

The document is the envelope plus a key `event` holding the payload, so both Formance-style
filters (`event.status == 'SUCCEEDED'`) and envelope paths (`type`, `payload.amount`) work.

Ordering comparisons follow the JMESPath specification: when either side is not a number the
result is null. The `jmespath` package raises TypeError for `'a' < 1` instead (an open upstream
bug), so the interpreter below overrides that one node type.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.functions
import jmespath.lexer
import jmespath.visitor

from trigger_daemon.core.events import Envelope

_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}
_COMPARATOR_TOKENS = frozenset({"eq", "ne", "lt", "lte", "gt", "gte"})
# Nesting deeper than this is rejected at validation: Python's recursion limit is near.
MAX_EXPRESSION_LENGTH = 4096


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


_INTERPRETER = _SpecInterpreter()
_FUNCTIONS: Mapping[str, Any] = jmespath.functions.Functions().FUNCTION_TABLE


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled JMESPath expression and its source text."""

    source: str
    _ast: Any  # jmespath's parsed tree

    def evaluate(self, document: Mapping[str, Any]) -> Any:
        """Evaluate; any failure (a function given the wrong type, ...) is an ExpressionError."""
        try:
            return _INTERPRETER.visit(self._ast, document)
        except jmespath.exceptions.JMESPathError as exc:
            raise ExpressionError(str(exc)) from exc
        except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
            raise ExpressionError(f"{type(exc).__name__}: {exc}") from exc


def compile_expression(source: str) -> Expression:
    """Compile `source`, or raise ExpressionError with a message a person can act on."""
    if not source.strip():
        raise ExpressionError("the expression is empty")
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    _reject_quoted_identifier_comparisons(source)
    try:
        ast = jmespath.compile(source).parsed
        _check_functions(ast)
    except jmespath.exceptions.JMESPathError as exc:
        raise ExpressionError(_describe_parse_error(exc)) from exc
    except RecursionError as exc:
        raise ExpressionError("the expression is nested too deeply") from exc
    return Expression(source=source, _ast=ast)


def _check_functions(node: Mapping[str, Any]) -> None:
    """Reject unknown functions and wrong argument counts now rather than on every event."""
    if node.get("type") == "function_expression":
        name = node["value"]
        spec = _FUNCTIONS.get(name)
        if spec is None:
            raise ExpressionError(f"unknown function {name}()")
        signature = spec["signature"]
        given = len(node["children"])
        variadic = bool(signature) and signature[-1].get("variadic", False)
        if (variadic and given < len(signature)) or (not variadic and given != len(signature)):
            wanted = f"at least {len(signature)}" if variadic else str(len(signature))
            raise ExpressionError(f"{name}() takes {wanted} argument(s), {given} given")
    for child in node.get("children", ()):
        if isinstance(child, Mapping):
            _check_functions(child)


def _describe_parse_error(exc: jmespath.exceptions.JMESPathError) -> str:
    if isinstance(exc, ExpressionError):
        return str(exc)
    position = getattr(exc, "lex_position", None)
    if isinstance(exc, jmespath.exceptions.LexerError):
        what = exc.message
    elif isinstance(exc, jmespath.exceptions.IncompleteExpressionError):
        what = "incomplete expression"
    else:
        what = getattr(exc, "msg", None) or str(exc)
    return f"{what} at position {position}" if position is not None else what


def _reject_quoted_identifier_comparisons(source: str) -> None:
    """Catch `status == "SUCCEEDED"`: in JMESPath a double-quoted word is a field, not a string.

    Only a quoted identifier standing alone next to a comparator is flagged; one that is part
    of a path (`payload."my-field" == 'x'`) is a legitimate field reference.
    """
    try:
        tokens = [
            token for token in jmespath.lexer.Lexer().tokenize(source) if token["type"] != "eof"
        ]
    except jmespath.exceptions.JMESPathError:
        return  # compile() reports lexer errors with their own message
    for index, token in enumerate(tokens):
        if token["type"] != "quoted_identifier":
            continue
        before = tokens[index - 1]["type"] if index > 0 else None
        after = tokens[index + 1]["type"] if index + 1 < len(tokens) else None
        in_path = before == "dot" or after in {"dot", "lbracket", "filter", "flatten"}
        next_to_comparator = before in _COMPARATOR_TOKENS or after in _COMPARATOR_TOKENS
        if next_to_comparator and not in_path:
            word = token["value"]
            raise ExpressionError(
                f"\"{word}\" is a field name in JMESPath, not a string; write '{word}' "
                f'for the string (or @."{word}" if you really mean a field)'
            )


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
