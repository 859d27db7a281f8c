"""What compilation refuses, and the reason it gives the person who wrote the expression."""

import jmespath
import pytest

from trigger_daemon.core.expression_checks import MAX_NESTING, source_problem, tree_problem
from trigger_daemon.core.expressions import ExpressionError, compile_expression


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "empty"),
        ("a ==", "incomplete expression at position 4"),
        ("a b", "Unexpected token: b"),
        ("a.`bad", "Unclosed ` delimiter"),
        ("nope(a)", "unknown function nope()"),
        ("length(a, b)", "length() takes 1 argument(s), 2 given"),
        ("not_null()", "not_null() takes at least 1 argument(s), 0 given"),
        ('event.status == "SUCCEEDED"', "'SUCCEEDED' for the string"),
        ('"PENDING" != status', "is a field name in JMESPath"),
        ("[" * 2000 + "]" * 2000, "nested too deeply"),
        ("a[?" * (MAX_NESTING + 1) + "b" + "]" * (MAX_NESTING + 1), "brackets nest more than"),
        ("!" * 4000 + "a", "nested too deeply"),  # the parser recurses once per `!`
        ("nope(a) || " * 70 + "a", "more than 64 levels"),  # depth is reported first
        ("a" * 5000, "longer than"),
    ],
)
def test_bad_expressions_are_rejected_with_a_reason(source: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=None) as caught:
        compile_expression(source)
    assert message in str(caught.value)


def test_quoted_identifiers_inside_paths_are_fields_and_allowed() -> None:
    document = {"payload": {"my-field": 1}, "SUCCEEDED": 1}
    assert compile_expression('payload."my-field" == `1`').evaluate(document) is True
    assert compile_expression('@."SUCCEEDED" == `1`').evaluate(document) is True


def test_a_lexer_error_is_left_to_the_parser_which_says_where_it_is() -> None:
    assert source_problem("a.`bad") is None
    with pytest.raises(ExpressionError, match="at position 2"):
        compile_expression("a.`bad")


def test_functions_are_checked_against_the_table_given() -> None:
    tree = jmespath.compile("shout(a, b)").parsed
    two_strings = {"signature": [{"types": ["string"]}, {"types": ["string"]}]}
    one_or_more = {"signature": [{"types": ["string"], "variadic": True}]}

    assert tree_problem(tree, {}) == "unknown function shout()"
    assert tree_problem(tree, {"shout": two_strings}) is None
    assert tree_problem(tree, {"shout": one_or_more}) is None
    assert tree_problem(tree, {"shout": {"signature": []}}) == (
        "shout() takes 0 argument(s), 2 given"
    )
