"""JMESPath evaluation per the specification, within its bounds; truthiness and rendering.

What compilation refuses is in test_expression_checks."""

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_daemon.core.events import Envelope
from trigger_daemon.core.expressions import (
    ExpressionError,
    compile_expression,
    document_for,
    is_truthy,
    render_value,
)


def evaluate(source: str, document: dict[str, Any]) -> Any:
    return compile_expression(source).evaluate(document)


@pytest.mark.parametrize(
    ("source", "document", "expected"),
    [
        ("a > `1`", {"a": "x"}, None),  # the jmespath package raises TypeError here
        ("a < `1`", {"a": None}, None),
        ("a >= b", {"a": "2", "b": 1}, None),
        ("a > `1`", {"a": True}, None),  # booleans are not numbers
        ("a > b", {"a": "b", "b": "a"}, None),  # strings do not order, per the spec
        ("a > `1`", {"a": 2}, True),
        ("a <= `2.5`", {"a": 2}, True),
        ("to_number(a) > `100`", {"a": "150"}, True),
        ("a == 'x'", {"a": "x"}, True),
        ("a != `1`", {"a": "1"}, True),
    ],
)
def test_ordering_comparisons_follow_the_specification(
    source: str, document: dict[str, Any], expected: Any
) -> None:
    assert evaluate(source, document) == expected


def test_comparisons_on_big_integers_are_exact() -> None:
    assert evaluate("a > `9007199254740992`", {"a": 9007199254740993}) is True


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (None, False),
        (False, False),
        ("", False),
        ([], False),
        ({}, False),
        (0, True),
        (True, True),
        ("x", True),
        ([0], True),
        ({"a": None}, True),
        (0.0, True),
    ],
)
def test_truthiness_follows_jmespath(value: Any, truthy: bool) -> None:
    assert is_truthy(value) is truthy


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("USD/2", "USD/2"),
        (2**70 + 1, "1180591620717411303425"),
        (-5, "-5"),
        (1.5, "1.5"),
        (1e21, "1e+21"),
        (True, "true"),
        (False, "false"),
        ({"b": [1, "x"], "a": None}, '{"b":[1,"x"],"a":null}'),
        ([1, 2], "[1,2]"),
        ("", ""),
    ],
)
def test_values_render_to_strings(value: Any, rendered: str) -> None:
    assert render_value(value) == rendered


def test_null_does_not_render() -> None:
    with pytest.raises(ExpressionError, match="null"):
        render_value(None)


def test_document_is_the_envelope_plus_event_holding_the_payload() -> None:
    raw = {"type": "SAVED_PAYMENT", "app": "payments", "payload": {"status": "SUCCEEDED"}}
    document = document_for(Envelope(type="SAVED_PAYMENT", payload=raw["payload"], raw=raw))
    assert evaluate("event.status == 'SUCCEEDED' && payload.status == 'SUCCEEDED'", document)
    assert evaluate("type", document) == "SAVED_PAYMENT"
    assert evaluate("app", document) == "payments"


def test_a_function_given_the_wrong_type_raises_expression_error() -> None:
    with pytest.raises(ExpressionError, match="abs"):
        evaluate("abs(a)", {"a": "text"})


PATHS = ["a", "a.b", "a[0]", "a[-1]", "a.b[1].c", "a[0][0]", "@", "@.a", "a.b.c.d"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(
    path=st.sampled_from(PATHS),
    stringified=st.booleans(),
    document=st.dictionaries(st.sampled_from(["a", "b"]), json_values, max_size=2),
)
def test_a_walked_path_answers_what_the_interpreter_answers(
    path: str, stringified: bool, document: dict[str, Any]
) -> None:
    expression = compile_expression(f"to_string({path})" if stringified else path)
    interpreted = dataclasses.replace(expression, _shortcut=None, _compiled=None)

    assert (expression._shortcut is not None) == stringified  # a plain path is compiled
    assert expression.evaluate(document) == interpreted.evaluate(document)


def test_to_string_of_a_container_is_still_weighed() -> None:
    document = {"a": ["x" * 1_000_000] * 8}

    with pytest.raises(ExpressionError, match="longer than"):
        evaluate("to_string(a)", document)
