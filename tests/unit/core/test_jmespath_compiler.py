"""The compiled engine answers as the interpreter does: on generated expressions and documents,
on the forms the daemon's filters take, and within the same evaluation bounds.

The official compliance suite runs against both engines in test_jmespath_compliance."""

from __future__ import annotations

import time
from typing import Any

import jmespath
import jmespath.exceptions
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from trigger_daemon.core.expression_bounds import MAX_EVALUATION_STEPS, MAX_VALUE_WEIGHT
from trigger_daemon.core.expressions import Expression, ExpressionError, compile_expression
from trigger_daemon.core.jmespath_compiler import NotCompilable, compile_tree

from .engines import engines, outcome

# --- generated expressions over generated documents ------------------------------------------

KEYS = ["a", "b", "c"]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=3)
    | st.floats(allow_nan=False, allow_infinity=False, width=16)
    | st.sampled_from(["", "x", "ab", "USD/2"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS), children, max_size=3)
    ),
    max_leaves=16,
)
LITERALS = ["`1`", "`0`", "`-1.5`", "`null`", "`true`", "`false`", "'x'", "''", "`[1, 2]`",
            '`{"a": 1}`', "`\"ab\"`"]  # fmt: skip
FUNCTIONS_1 = ["length", "to_string", "to_number", "to_array", "type", "keys", "values",
               "sort", "reverse", "abs", "ceil", "floor", "sum", "avg", "max", "min",
               "not_null"]  # fmt: skip
FUNCTIONS_2 = ["contains", "starts_with", "ends_with", "join", "merge", "not_null"]
FUNCTIONS_BY = ["sort_by", "max_by", "min_by"]
SUFFIXES = [".a", ".b", "[0]", "[-1]", "[1:]", "[::-1]", "[:2]", "[*]", "[]", ".*"]


def expressions() -> st.SearchStrategy[str]:
    leaves = st.sampled_from(KEYS * 4 + ["@", "@"] + LITERALS)  # paths as often as literals

    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        group = children.map(lambda text: f"({text})")
        return st.one_of(
            st.tuples(children, st.lists(st.sampled_from(SUFFIXES), min_size=1, max_size=3)).map(
                lambda parts: parts[0] + "".join(parts[1])
            ),
            st.tuples(children, children).map(lambda p: f"{p[0]}[?{p[1]}]"),
            st.tuples(children, children, children).map(lambda p: f"{p[0]}[?{p[1]}].{p[2]}"),
            st.tuples(children, st.sampled_from(["|", "||", "&&"]), children).map(" ".join),
            st.tuples(children, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), children).map(
                " ".join
            ),
            children.map(lambda text: f"!{text}"),
            group,
            st.tuples(group, children).map(lambda p: f"{p[0]}.[{p[1]}, a]"),
            st.tuples(group, children).map(lambda p: f"{p[0]}.{{k: {p[1]}, a: a}}"),
            st.tuples(children, children).map(lambda p: f"[{p[0]}, {p[1]}]"),
            st.tuples(children, children).map(lambda p: f"{{x: {p[0]}, y: {p[1]}}}"),
            st.tuples(st.sampled_from(FUNCTIONS_1), children).map(lambda p: f"{p[0]}({p[1]})"),
            st.tuples(st.sampled_from(FUNCTIONS_2), children, children).map(
                lambda p: f"{p[0]}({p[1]}, {p[2]})"
            ),
            st.tuples(st.sampled_from(FUNCTIONS_BY), children, children).map(
                lambda p: f"{p[0]}({p[1]}, &{p[2]})"
            ),
            st.tuples(children, children).map(lambda p: f"map(&{p[0]}, {p[1]})"),
        )

    return st.recursive(leaves, extend, max_leaves=5)


@settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    source=expressions(),
    document=st.dictionaries(st.sampled_from(KEYS), json_values, max_size=3) | json_values,
)
@example(source="a[?b > `1`].c", document={"a": [{"b": 2, "c": 1}, {"b": "x", "c": 2}]})
@example(source="sort_by(a, &b)", document={"a": [{"b": 1}, {"b": "x"}]})
@example(source="!a && b || c", document={"a": 0, "b": [], "c": False})
@example(source="[a[1:], b > `0`, b.* ]", document={"a": "ab", "b": True})  # not strings, bools
@example(source="[a.b, a.c.b, b[0].a, c.a]", document={"a": {"c": []}, "b": [{}], "c": 1})
def test_the_compiled_engine_answers_as_the_interpreter(source: str, document: Any) -> None:
    try:
        interpreted, compiled = engines(source)
    except jmespath.exceptions.JMESPathError:
        assume(False)  # a generated text that does not parse
        return
    assert outcome(compiled, document) == outcome(interpreted, document)


# --- the daemon's filters --------------------------------------------------------------------

LEDGER_EVENT = {
    "type": "COMMITTED_TRANSACTIONS",
    "payload": {"amount": 150},
    "event": {
        "ledger": "main",
        "destination": "treasury:0",
        "transactions": [
            {"id": 7, "postings": [{"asset": "EUR/2", "amount": 10, "source": "world"}]},
            {"id": 8, "postings": [{"asset": "USD/2", "amount": 12500, "source": "world"}]},
        ],
    },
}
FILTERS = [
    "event.transactions[?postings[?asset=='USD/2']] | length(@) > `0`",
    "length(event.transactions[?postings[?amount > `100`]]) > `0`",
    "payload.amount > `100`",
    "event.destination == 'treasury:0'",
    "event.destination != 'treasury:0' || payload.amount >= `150`",
    "starts_with(event.destination, 'treasury:') && !contains(['a', 'b'], event.ledger)",
    "to_number(to_string(payload.amount)) <= `150.0`",
    "max_by(event.transactions[].postings[], &amount).asset",
    "sort_by(event.transactions, &id)[*].id",
    "map(&length(postings), event.transactions)",
    "event.transactions[*].postings[0].{a: asset, n: amount}",
    "event.*.transactions | [0][0].id",
]


@pytest.mark.parametrize("source", FILTERS)
def test_the_daemons_filters_compile_and_answer_as_interpreted(source: str) -> None:
    expression = compile_expression(source)
    interpreted = Expression(source=source, _ast=expression._ast, syntax=expression.syntax)

    assert expression.compiled
    assert outcome(expression, LEDGER_EVENT) == outcome(interpreted, LEDGER_EVENT)


def test_a_tree_the_compiler_does_not_know_is_refused() -> None:
    with pytest.raises(NotCompilable, match="'wormhole'"):
        compile_tree({"type": "and_expression", "children": [{"type": "wormhole"}] * 2})


def test_an_uncompiled_expression_is_interpreted_and_says_so() -> None:
    expression = compile_expression("a[?b > `1`].c")
    interpreted = Expression(
        source=expression.source, _ast=expression._ast, syntax=expression.syntax
    )

    assert expression.compiled
    assert not interpreted.compiled
    assert interpreted.evaluate({"a": [{"b": 2, "c": "x"}]}) == ["x"]


# --- the bounds ------------------------------------------------------------------------------

HOSTILE = [
    "a | " + " | ".join(["[*].[@,@,@,@,@,@,@,@,@,@] | []"] * 3) + " | length(@)",
    " | ".join(["[@,@]"] * 25) + " | to_string(@)",
    " | ".join(["{a: @, b: @}"] * 25) + " | to_string(@)",
    " | ".join(["[[@],[@]] | []"] * 25) + " | to_string(@)",
    "a | " + " | ".join(["map(&[@,@,@,@,@,@,@,@,@,@], @) | []"] * 3) + " | length(@)",
    "a | " + " | ".join(["[*].{a:@,b:@,c:@,d:@,e:@,f:@,g:@,h:@,i:@,j:@} | [*].* | []"] * 3),
    "join(x, a[*].to_string(@))",
]


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_expressions_stop_with_an_expression_error_in_both_engines(source: str) -> None:
    document = {"a": list(range(1000)), "x": "s" * 5000}
    for expression in engines(source):
        started = time.monotonic()
        with pytest.raises(ExpressionError, match=r"steps|weigh|longer than|join"):
            expression.evaluate(document)
        assert time.monotonic() - started < 10


def test_a_loop_is_charged_before_it_runs() -> None:
    """Intentional difference: the compiled engine charges a loop's steps up front (elements
    times the nodes per element), so a loop the interpreter would just finish is stopped."""
    elements = 150_000
    document = {"a": [{"b": 1}] * elements}
    # The interpreter visits the condition's 3 nodes per element (450,000 steps); the compiled
    # count adds the result's `@`, never visited here since nothing matches (600,000).
    interpreted, compiled = engines("a[?b == `2`]")

    assert interpreted.evaluate(document) == []
    with pytest.raises(ExpressionError, match=f"after {MAX_EVALUATION_STEPS} steps"):
        compiled.evaluate(document)


def test_a_part_of_the_event_is_not_weighed() -> None:
    """Intentional difference: a filter's result is made of its input's elements, so the
    compiled engine does not weigh it; over an event array heavier than MAX_VALUE_WEIGHT the
    interpreter stops and the compiled engine answers."""
    heavy = {"a": ["x" * 1000] * (MAX_VALUE_WEIGHT // 1000 + 1)}
    interpreted, compiled = engines("length(a[?@])")

    with pytest.raises(ExpressionError, match="would weigh more than"):
        interpreted.evaluate(heavy)
    assert compiled.evaluate(heavy) == len(heavy["a"])
