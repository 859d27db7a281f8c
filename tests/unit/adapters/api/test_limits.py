"""Every input limit at its bound (accepted) and one past it (refused with a reason)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trigger_daemon.core import json_input
from trigger_daemon.core.expression_checks import MAX_EXPRESSION_LENGTH, MAX_NESTING, MAX_TREE_DEPTH
from trigger_daemon.core.expressions import ExpressionError, compile_expression
from trigger_daemon.core.triggers import MAX_NAME_LENGTH, MAX_VARS, parse_definition
from trigger_daemon.errors import TriggerValidationError


def trigger(**fields: Any) -> dict[str, Any]:
    return {"event": "SAVED_PAYMENT", "workflowID": "wf", **fields}


def test_expression_length() -> None:
    compile_expression("a" * MAX_EXPRESSION_LENGTH)
    with pytest.raises(ExpressionError, match=f"longer than {MAX_EXPRESSION_LENGTH}"):
        compile_expression("a" * (MAX_EXPRESSION_LENGTH + 1))


def test_bracket_nesting() -> None:
    compile_expression("(" * MAX_NESTING + "a" + ")" * MAX_NESTING)
    with pytest.raises(ExpressionError, match=f"more than {MAX_NESTING} levels"):
        compile_expression("(" * (MAX_NESTING + 1) + "a" + ")" * (MAX_NESTING + 1))


def tree_depth(node: Any) -> int:
    children = [child for child in node.get("children", ()) if isinstance(child, dict)]
    return 1 + max((tree_depth(child) for child in children), default=0)


def test_syntax_tree_depth() -> None:
    # `a || a || ...`: each || adds one level to the tree.
    deepest = " || ".join(["a"] * MAX_TREE_DEPTH)
    assert tree_depth(compile_expression(deepest)._ast) == MAX_TREE_DEPTH
    with pytest.raises(ExpressionError, match=f"more than {MAX_TREE_DEPTH} levels"):
        compile_expression(deepest + " || a")


def test_the_documented_example_filters_are_far_from_the_bounds() -> None:
    example = (
        "event.transactions[?postings[?asset=='USD/2' && amount > `100000`]] | length(@) > `0`"
    )
    assert tree_depth(compile_expression(example)._ast) < MAX_TREE_DEPTH // 4


def test_name_length() -> None:
    parse_definition(trigger(name="n" * MAX_NAME_LENGTH))
    with pytest.raises(TriggerValidationError, match="name"):
        parse_definition(trigger(name="n" * (MAX_NAME_LENGTH + 1)))


def test_number_of_vars() -> None:
    parse_definition(trigger(vars={f"v{i}": "event.id" for i in range(MAX_VARS)}))
    with pytest.raises(TriggerValidationError, match="vars"):
        parse_definition(trigger(vars={f"v{i}": "event.id" for i in range(MAX_VARS + 1)}))


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_json_nesting() -> None:
    json_input.loads(nested(json_input.MAX_DEPTH))
    with pytest.raises(json_input.JSONInputError, match="nested deeper"):
        json_input.loads(nested(json_input.MAX_DEPTH + 1))


def test_json_integers_up_to_the_conversion_limit_stay_exact() -> None:
    digits = "9" * 4300
    assert json_input.loads(digits) == int(digits)
    with pytest.raises(json_input.JSONInputError, match="digits"):
        json_input.loads(digits + "9")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"a": NaN}', "NaN"),
        ('{"a": Infinity}', "Infinity"),
        ('{"a": "\\ud800"}', "surrogate"),
        ('{"\\udc00": 1}', "surrogate"),
        ('{"a": "x\\u0000"}', "NUL"),
        ('{"x\\u0000": 1}', "NUL"),
    ],
)
def test_json_that_later_stages_cannot_store_is_refused(text: str, fragment: str) -> None:
    with pytest.raises(json_input.JSONInputError, match=fragment):
        json_input.loads(text)


def test_json_that_only_looks_suspicious_is_accepted() -> None:
    assert json_input.loads('{"emoji": "\\ud83d\\ude00"}') == {"emoji": "\U0001f600"}
    assert json_input.loads('{"text": "a \\\\u0000 b"}') == {"text": "a \\u0000 b"}
    assert json_input.loads(json.dumps({"amount": 2**80})) == {"amount": 2**80}
