"""Hostile input, tried with hypothesis: whatever arrives from Kafka or the API, the decoder, the
trigger validator and the expression engine answer with a value or their own error, never an
unexpected exception, and never spend unbounded time on one event.

Runs are deterministic (`derandomize`, no example database), so CI cannot flake; the example
counts are in SETTINGS. Findings these tests made, now fixed: a record holding a 5000-digit
integer or 100000 nested brackets raised out of `decode` (ValueError, RecursionError) instead of
going to the dead letters; a lone surrogate escape (`"\\ud800"`), a NUL (`"\\u0000"`) or NaN
decoded into an envelope that the store (PostgreSQL), the log or the workflow call could not
encode, so its partition would have retried the write forever.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from trigger_daemon.core import json_input
from trigger_daemon.core.events import Envelope, Unprocessable, UnprocessableReason, decode
from trigger_daemon.core.expressions import (
    MAX_EVALUATION_STEPS,
    ExpressionError,
    compile_expression,
    render_value,
)
from trigger_daemon.core.triggers import parse_definition
from trigger_daemon.errors import TriggerValidationError

SETTINGS = settings(
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
NASTY_FRAGMENTS = [
    '"\\ud800"',
    '"\\udfff\\ud800"',
    "NaN",
    "-Infinity",
    "1" * 5000,
    "[" * 5000,
    "{" * 300,
    '"\\u0000"',
    "1e999999",
    '{"type": "T", "payload": {}, "type": 1}',
    "\ufeff{}",
]


def assert_storable(envelope: Envelope) -> None:
    """What every later stage needs: JSON-encodable, UTF-8-encodable, bounded nesting."""
    text = json.dumps(envelope.raw, ensure_ascii=False, allow_nan=False)
    text.encode("utf-8")
    assert not any("\x00" in string for string in strings(envelope.raw))  # PostgreSQL: no NUL
    assert not json_input.depth_exceeds(envelope.raw, json_input.MAX_DEPTH)


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@SETTINGS
@given(st.binary(max_size=512))
@example(b"\xed\xa0\x80")  # a UTF-8-encoded surrogate: not valid UTF-8
@example(b"1" * 5000)
@example(b"[" * 100_000)
def test_the_decoder_never_raises_on_arbitrary_bytes(value: bytes) -> None:
    result = decode(value)
    assert isinstance(result, Envelope | Unprocessable)
    if isinstance(result, Envelope):
        assert_storable(result)


@SETTINGS
@given(
    st.lists(
        st.sampled_from(NASTY_FRAGMENTS)
        | st.sampled_from(['{"type":', '"payload":', "[", "]", "{", "}", ",", ":", '"x"'])
        | json_values.map(json.dumps),
        max_size=8,
    )
)
def test_the_decoder_never_raises_on_json_like_text(parts: list[str]) -> None:
    result = decode("".join(parts).encode("utf-8", "surrogatepass"))
    assert isinstance(result, Envelope | Unprocessable)
    if isinstance(result, Envelope):
        assert_storable(result)


@SETTINGS
@given(
    event_type=st.one_of(st.text(max_size=10), json_values),
    payload=json_values,
    extra=st.dictionaries(st.text(max_size=8), json_values, max_size=3),
)
def test_envelopes_are_accepted_exactly_when_type_and_payload_are_right(
    event_type: Any, payload: Any, extra: dict[str, Any]
) -> None:
    document = {**extra, "type": event_type, "payload": payload}
    result = decode(json.dumps(document).encode())

    has_nul = any("\x00" in string for string in strings(document))
    valid = isinstance(event_type, str) and event_type != "" and isinstance(payload, dict)
    assert isinstance(result, Envelope) == (valid and not has_nul)
    if isinstance(result, Envelope):
        assert result.raw == document  # integers exact, nothing altered
    elif has_nul:
        assert result.reason is UnprocessableReason.NOT_JSON
    else:
        assert result.reason in (
            UnprocessableReason.MISSING_TYPE,
            UnprocessableReason.PAYLOAD_NOT_AN_OBJECT,
        )


@SETTINGS
@given(json_values)
def test_rendering_a_var_gives_a_string_or_says_null(value: Any) -> None:
    try:
        rendered = render_value(value)
    except ExpressionError:
        assert value is None
        return
    assert isinstance(rendered, str)
    if isinstance(value, int) and not isinstance(value, bool):
        assert rendered == str(value)  # exact digits, however large
    if isinstance(value, list | dict):
        assert json.loads(rendered) == value


TOKENS = [
    "a", "b", "event", "payload", "type", "@", ".", "[*]", "[]", "[0]", "[-1]", "[1:2]",
    "[?", "]", "|", "||", "&&", "!", "==", "!=", "<", ">=", "(", ")", "{x: ", "}", ",",
    "`1`", "`\"s\"`", "`[1,2]`", "'s'", '"q"', "&", "*", "length(", "to_string(",
    "to_number(", "join(',', ", "sort(", "sort_by(", "max_by(", "map(&", "merge(",
    "contains(", "keys(", "values(", "reverse(", "not_null(", "abs(", "[@,@]", "{a:@,b:@}",
]  # fmt: skip


@SETTINGS
@given(
    source=st.lists(st.sampled_from(TOKENS), min_size=1, max_size=14).map(" ".join),
    document=st.dictionaries(st.sampled_from(["a", "b", "event", "payload"]), json_values),
)
@example(source="|".join(["[@,@]"] * 40) + " | to_string(@)", document={"a": "x" * 100})
@example(source="a" + ".a" * 100, document={})
@example(source="(" * 40 + "a" + ")" * 40, document={})
def test_an_expression_compiles_or_says_why_and_evaluates_or_says_why(
    source: str, document: dict[str, Any]
) -> None:
    try:
        expression = compile_expression(source)
    except ExpressionError:
        return
    started = time.monotonic()
    try:
        result = expression.evaluate(document)
    except ExpressionError:
        return
    finally:
        assert time.monotonic() - started < 5
    try:
        render_value(result)
    except ExpressionError:
        assert result is None


def test_a_runaway_evaluation_stops_at_the_step_bound() -> None:
    many = {"a": list(range(1000))}
    tenfold = "[*].[@,@,@,@,@,@,@,@,@,@] | []"
    fan_out = " | ".join(["a", tenfold, tenfold, tenfold, "length(@)"])  # 10**6 items
    started = time.monotonic()
    with pytest.raises(ExpressionError, match=f"after {MAX_EVALUATION_STEPS} steps"):
        compile_expression(fan_out).evaluate(many)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("bomb", ["[@,@]", "{a: @, b: @}", "[[@],[@]] | []"])
def test_values_that_double_at_each_pipe_are_stopped_before_they_are_built(bomb: str) -> None:
    source = " | ".join([bomb] * 25) + " | to_string(@)"  # 2**25 copies once expanded
    started = time.monotonic()
    with pytest.raises(ExpressionError, match="would weigh more than"):
        compile_expression(source).evaluate({"x": "y" * 100})
    assert time.monotonic() - started < 5


def test_join_cannot_multiply_its_input() -> None:
    with pytest.raises(ExpressionError, match="join"):
        compile_expression("join(sep, items)").evaluate({"sep": "s" * 100_000, "items": [""] * 100})
    assert compile_expression("join(', ', items)").evaluate({"items": ["a", "b"]}) == "a, b"


def test_long_chains_are_refused_when_the_trigger_is_validated() -> None:
    with pytest.raises(ExpressionError, match="nested too deeply"):
        compile_expression(" | ".join(["[@,@]"] * 70))
    compile_expression(" | ".join(["[@,@]"] * 20))  # a long but reasonable pipeline is fine


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(["name", "event", "version", "filter", "workflowID", "vars", "id", "x"]),
        json_values
        | st.text(max_size=300)
        | st.dictionaries(st.text(max_size=5), st.text(max_size=20) | json_values, max_size=3),
        max_size=7,
    )
)
@example({"event": "E", "workflowID": "w", "vars": {str(i): "a" for i in range(101)}})
@example({"event": "E", "workflowID": "w", "filter": "a" * 5000})
@example({"event": "E" * 300, "workflowID": "w"})
def test_the_trigger_validator_accepts_or_lists_problems(raw: dict[str, Any]) -> None:
    try:
        definition = parse_definition(raw)
    except TriggerValidationError as exc:
        problems = exc.problems
    else:
        assert definition.event
        assert definition.workflow_id
        return
    assert problems
    assert all(isinstance(problem, str) and problem for problem in problems)


# The fast path for record values (orjson) answers exactly as the standard parser.


def answer(parse: Any, argument: Any) -> tuple[str, str]:
    """A parser's answer, comparable: the value as JSON (so int vs float and 0.0 vs -0.0
    count), or the refusal's message."""
    try:
        return "value", json.dumps(parse(argument))
    except json_input.JSONInputError as exc:
        return "refused", str(exc)


@SETTINGS
@given(json_values)
def test_the_fast_path_parses_every_json_value_as_the_standard_one(value: object) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert answer(json_input.loads_utf8, text.encode()) == answer(json_input.loads, text)


@pytest.mark.parametrize(
    "text",
    [
        '{"amount": 123456789012345678901234567890}',  # orjson alone would make it a float
        '{"amount": -9223372036854775809}',
        '{"amount": 18446744073709551616}',
        "-0",
        '{"a": "\\u0000"}',
        "[" * 150 + "]" * 150,
        '{"a": 1} trailing',
        '{"a": "\x01"}',
        "1e400",
        *NASTY_FRAGMENTS,
    ],
)
def test_the_fast_path_refuses_and_accepts_as_the_standard_one(text: str) -> None:
    assert answer(json_input.loads_utf8, text.encode()) == answer(json_input.loads, text)


def test_the_fast_path_reports_invalid_utf8_as_the_decoder_does() -> None:
    with pytest.raises(UnicodeDecodeError):
        json_input.loads_utf8(b'{"a": "\xff"}')
