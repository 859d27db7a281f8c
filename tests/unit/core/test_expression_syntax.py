"""The typed view of a compiled expression's syntax tree names the shapes it recognises and
keeps everything else opaque."""

import pytest

from trigger_daemon.core.expression_syntax import (
    AllOf,
    AnyOf,
    Comparison,
    FieldPath,
    FunctionCall,
    ListOf,
    LiteralValue,
    Not,
    OtherNode,
    SyntaxNode,
)
from trigger_daemon.core.expressions import compile_expression

a, b, c = FieldPath(("a",)), FieldPath(("b",)), FieldPath(("c",))


@pytest.mark.parametrize(
    ("source", "tree"),
    [
        (
            "event.transactions[0].postings[-1].destination",
            FieldPath(("event", "transactions", 0, "postings", -1, "destination")),
        ),
        ("@", FieldPath(())),
        ("@.a", FieldPath(("a",))),
        ('payload."my-field"', FieldPath(("payload", "my-field"))),
        ("'x'", LiteralValue("x")),
        ('`"x"`', LiteralValue("x")),
        ("`[1, null]`", LiteralValue([1, None])),
        ("a == 'x'", Comparison("eq", a, LiteralValue("x"))),
        ("`2` <= a", Comparison("lte", LiteralValue(2), a)),
        ("a != b", Comparison("ne", a, b)),
        ("a && b && c", AllOf((a, b, c))),
        ("a && (b && c)", AllOf((a, b, c))),
        ("(a == 'x' && b) && c", AllOf((Comparison("eq", a, LiteralValue("x")), b, c))),
        ("to_string(a)", FunctionCall("to_string", (a,))),
        ("sort_by(a, &b)", FunctionCall("sort_by", (a, OtherNode("expref")))),
        ("a || b", AnyOf((a, b))),
        ("a || (b || c)", AnyOf((a, b, c))),
        ("(a || b) && c", AllOf((AnyOf((a, b)), c))),
        ("!a", Not(a)),
        ("!(a.b)", Not(FieldPath(("a", "b")))),
        ("!a.b", OtherNode("subexpression")),  # `(!a).b`: `!` binds tighter than `.`
        ("['x', a]", ListOf((LiteralValue("x"), a))),
        ("a[*].b", OtherNode("projection")),
        ("a[?b == 'x']", OtherNode("filter_projection")),
        ("a.to_string(@)", OtherNode("subexpression")),  # not a plain path
        ("a | b", OtherNode("pipe")),
    ],
)
def test_each_shape_has_its_typed_node(source: str, tree: SyntaxNode) -> None:
    assert compile_expression(source).syntax == tree


@pytest.mark.parametrize(
    ("source", "value"),
    [("`true`", True), ("`1`", 1), ("`1.0`", 1.0), ("`null`", None)],
)
def test_literals_keep_their_json_type(source: str, value: object) -> None:
    tree = compile_expression(source).syntax
    assert isinstance(tree, LiteralValue)
    assert type(tree.value) is type(value)
    assert tree.value == value
