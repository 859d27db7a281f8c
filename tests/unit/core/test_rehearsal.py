"""Testing a trigger against one event: the answer, the explanation and the clause split."""

from datetime import UTC, datetime
from typing import Any

import pytest

from trigger_daemon.core.events import Unprocessable
from trigger_daemon.core.rehearsal import (
    RehearsalEvent,
    TriggerTestReport,
    explain,
    rehearsal_event,
    top_level_clauses,
)
from trigger_daemon.core.triggers import CompiledTrigger, Trigger, compile_trigger, parse_definition


def trigger(**fields: Any) -> CompiledTrigger:
    parsed = parse_definition({"event": "SAVED_PAYMENT", "workflowID": "wf", **fields})
    return compile_trigger(
        Trigger(**parsed.model_dump(), id="t1", created_at=datetime(2026, 1, 1, tzinfo=UTC))
    )


def rehearse(compiled: CompiledTrigger, body: object) -> TriggerTestReport:
    event = rehearsal_event(body, compiled.trigger.event)
    assert isinstance(event, RehearsalEvent)
    return explain(compiled, event)


def envelope(payload: Any, type_: str = "SAVED_PAYMENT", **fields: Any) -> dict[str, Any]:
    return {"type": type_, "payload": payload, **fields}


def test_a_bare_payload_is_tested_on_filter_and_vars_only() -> None:
    compiled = trigger(version="v2", filter="event.amount > `10`")
    report = rehearse(compiled, {"amount": 50})
    assert report.match is True
    assert report.filter_error is None
    assert report.explanation.event_checked is False
    assert report.explanation.decision == (
        "matches: the filter is true (a bare payload: its type and version are not checked)"
    )


def test_a_full_envelope_is_checked_on_version_and_says_which() -> None:
    compiled = trigger(version="v2", filter="event.amount > `10`")
    report = rehearse(compiled, envelope({"amount": 50}, version="v1"))
    assert report.match is False
    assert report.filter_error == "event version 'v1' is not 'v2'"
    explanation = report.explanation
    assert (explanation.version.expected, explanation.version.actual) == ("v2", "v1")
    assert explanation.version.matches is False
    assert explanation.decision == "no match: the event's version is 'v1', the trigger wants 'v2'"
    # The filter is still evaluated, so the operator sees what it would have said.
    assert explanation.filter is not None
    assert explanation.filter.result.value is True


def test_a_full_envelope_of_another_type_does_not_match() -> None:
    report = rehearse(trigger(), envelope({}, "SAVED_ACCOUNT"))
    assert report.match is False
    assert report.filter_error == "event type 'SAVED_ACCOUNT' is not 'SAVED_PAYMENT'"
    assert report.explanation.type.matches is False
    assert report.explanation.version.matches is True  # the trigger wants any version


def test_each_clause_of_a_conjunction_is_shown_and_the_false_one_named() -> None:
    compiled = trigger(filter="event.asset == 'USD/2' && event.amount > `100`")
    report = rehearse(compiled, {"asset": "USD/2", "amount": 50})
    filter_ = report.explanation.filter
    assert filter_ is not None
    assert filter_.operator == "&&"
    assert [(c.expression, c.value) for c in filter_.clauses] == [
        ("event.asset == 'USD/2'", True),
        ("event.amount > `100`", False),
    ]
    assert report.explanation.decision == (
        "no match: the filter is false: clause 2 of 2, `event.amount > `100``, is false "
        "(a bare payload: its type and version are not checked)"
    )


def test_a_null_clause_is_reported_as_null_not_as_an_error() -> None:
    compiled = trigger(filter="event.status == 'SUCCEEDED' && event.amount > `1`")
    report = rehearse(compiled, {"status": "SUCCEEDED", "amount": "12"})
    filter_ = report.explanation.filter
    assert filter_ is not None
    assert filter_.clauses[1].value is None
    assert filter_.clauses[1].error is None
    assert "`event.amount > `1``, is null" in report.explanation.decision


def test_a_disjunction_with_no_true_clause_says_so() -> None:
    compiled = trigger(filter="event.kind == 'a' || event.kind == 'b' || event.kind == 'c'")
    report = rehearse(compiled, envelope({"kind": "z"}))
    filter_ = report.explanation.filter
    assert filter_ is not None
    assert filter_.operator == "||"
    assert [clause.truthy for clause in filter_.clauses] == [False, False, False]
    assert (
        report.explanation.decision
        == "no match: the filter is false: none of its 3 clauses is true"
    )


def test_a_failing_filter_is_an_error_and_vars_are_still_rendered() -> None:
    compiled = trigger(filter="abs(event.name) > `1`", vars={"ref": "event.ref", "n": "event.no"})
    report = rehearse(compiled, {"name": "x", "ref": "r-1"})
    assert report.match is False
    assert report.filter_error is not None
    assert "abs()" in report.filter_error
    assert report.variables["ref"].value == "r-1"
    assert report.variables["n"].error is not None
    explained = report.explanation.variables
    assert (explained["ref"].expression, explained["ref"].value) == ("event.ref", "r-1")
    assert report.explanation.decision.startswith("no match: the filter failed: ")


def test_a_match_whose_var_fails_says_a_live_event_would_fail() -> None:
    report = rehearse(trigger(vars={"ref": "event.reference"}), envelope({}))
    assert report.match is True
    assert report.explanation.filter is None
    assert report.explanation.decision == (
        "matches (the trigger has no filter), but var 'ref' cannot be rendered: "
        "a live event would end failed"
    )


def test_a_long_value_is_cut_short_in_the_sentence_only() -> None:
    compiled = trigger(filter="event.note")
    report = rehearse(compiled, envelope({"note": "x" * 500}))
    assert report.match is True
    assert report.explanation.decision == "matches: the filter is " + '"' + "x" * 78 + "…"
    filter_ = report.explanation.filter
    assert filter_ is not None
    assert filter_.result.value == "x" * 500


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a && b && c", ("&&", ("a", "b", "c"))),
        ("a && b || c", ("||", ("a && b", "c"))),
        ("(a || b) && c", ("&&", ("(a || b)", "c"))),
        ("(a && b)", ("&&", ("a", "b"))),
        ("(a) && (b)", ("&&", ("(a)", "(b)"))),
        ("x[?a && b] || `true`", ("||", ("x[?a && b]", "`true`"))),
        ("{k: a && b} && c", ("&&", ("{k: a && b}", "c"))),
        ("a == 'x && y' && b", ("&&", ("a == 'x && y'", "b"))),
        ("a && b | c", (None, ())),
        ("!(a && b)", (None, ())),
        ("a.b == `1`", (None, ())),
    ],
)
def test_top_level_clauses(source: str, expected: tuple[str | None, tuple[str, ...]]) -> None:
    assert top_level_clauses(source) == expected


def test_an_event_body_is_an_envelope_a_bare_payload_or_unusable() -> None:
    bare = rehearsal_event({"status": "SUCCEEDED"}, "SAVED_PAYMENT")
    assert isinstance(bare, RehearsalEvent)
    assert bare.bare
    assert (bare.envelope.type, bare.envelope.payload) == ("SAVED_PAYMENT", {"status": "SUCCEEDED"})
    full = rehearsal_event({"type": "X", "payload": {"a": 1}}, "SAVED_PAYMENT")
    assert isinstance(full, RehearsalEvent)
    assert not full.bare
    assert full.envelope.type == "X"
    assert isinstance(rehearsal_event([1], "SAVED_PAYMENT"), Unprocessable)
