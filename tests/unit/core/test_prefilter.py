"""The candidate index finds exactly what evaluating every filter finds, in the same order,
with the same filter failures, for every shape it indexes; and it proposes only the triggers
an event's value can match, however many there are."""

import functools
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_daemon.core.events import Envelope
from trigger_daemon.core.expressions import ExpressionError, is_truthy
from trigger_daemon.core.matching import MatchResult, TriggerIndex
from trigger_daemon.core.prefilter import INDEX_FROM, CandidateIndex
from trigger_daemon.core.triggers import CompiledTrigger, Trigger, compile_trigger, parse_definition

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PATHS = ["event.status", "event.meta.tier", "event.items[0]"]
LITERALS = ["'x'", "'1'", "''", "`1`", "`1.0`", "`0`", "`2`", "`true`", "`false`", "`null`"]
NUMBERS = ["`0`", "`1`", "`1.0`", "`1.5`", "`-1`", "`2`", "`9007199254740993`"]
ORDERINGS = ["<", "<=", ">", ">="]
LISTS = ["['x', `1`]", "`[true, null]`", '`[0, "1"]`', "`[]`", "['']", "`[1.0, false]`"]
PREFIXES = ["''", "'x'", "'1'", "'xy'"]


def clauses_on(p: str) -> list[str]:
    """Every indexed shape on path `p` (and on `to_number(p)`), and a few that are not."""
    keys = [p, f"to_number({p})"]
    return [
        *(f"{k} {op} {literal}" for k in keys for op in ("==", "!=") for literal in LITERALS),
        *(f"{literal} == {p}" for literal in LITERALS),
        *(f"{k} {op} {n}" for k in keys for op in ORDERINGS for n in NUMBERS),
        *(f"{n} {op} {p}" for op in ORDERINGS for n in NUMBERS),
        f"{p} > `0` && {p} <= `2`",
        f"{p} >= `1.0` && {p} < `1.5`",
        f"to_number({p}) > `-1` && to_number({p}) < `1`",
        f"{p} > 'x'",  # always null: not indexed
        *(f"starts_with({p}, {prefix})" for prefix in PREFIXES),  # raises for non-strings
        *(f"contains({items}, {k})" for k in keys for items in LISTS),
        f"{p} == 'x' || {p} == `1`",
        f"{p} == `true` || {p} == `null` || {p} == '1'",
        f"{p} == 'x' || {p} != `1`",  # not an either-or of equalities
        *(f"{k}" for k in keys),
        *(f"!({k})" for k in keys),
        f"!{p}",  # `(!event).status`: a field of a boolean, always null
        f"abs({p}) > `0`",  # raises for non-numbers: stops the clauses after it
        f"length({p}) > `1`",
        f"{p} == event.meta.tier",
        f"contains({p}, 'x')",
    ]


CLAUSES = sorted({clause for p in PATHS for clause in clauses_on(p)})
VALUES: list[Any] = [
    *(0, 1, 1.0, 0.0, -1, 1.5, 2, 2.0, 9007199254740993, 9007199254740992.0),
    *(True, False, None),
    *("x", "xy", "1", "1.0", "1.5", "", "nan", " 2 ", "-1"),
    *([1], [], {"a": 1}, {}),
]


@functools.cache
def compiled(n: int, filter_: str | None, version: str | None = None) -> CompiledTrigger:
    fields = {"event": "SAVED_PAYMENT", "workflowID": "wf", "filter": filter_, "version": version}
    parsed = parse_definition({k: v for k, v in fields.items() if v is not None})
    return compile_trigger(
        Trigger(**parsed.model_dump(), id=f"t{n}", created_at=T0 + timedelta(seconds=n))
    )


def brute_force(triggers: list[CompiledTrigger], envelope: Envelope) -> tuple[list, list]:
    """What matching means: every trigger of the type, in order, its filter evaluated."""
    document = {**envelope.raw, "event": envelope.payload}
    matched, failed = [], []
    for trigger in sorted(triggers, key=lambda c: (c.trigger.created_at, c.trigger.id)):
        version = trigger.trigger.version
        if version is not None and envelope.version != version:
            continue
        try:
            if is_truthy(trigger.evaluate_filter(document)):
                matched.append(trigger.trigger.id)
        except ExpressionError:
            failed.append(trigger.trigger.id)
    return matched, failed


def ids(result: MatchResult) -> tuple[list, list]:
    return [c.trigger.id for c in result.triggers], [f.trigger_id for f in result.filter_failures]


def envelope_of(status: Any, tier: Any, first_item: Any, version: str | None) -> Envelope:
    payload: dict[str, Any] = {"meta": {}}
    for container, name, value in (
        (payload, "status", status),
        (payload["meta"], "tier", tier),
        (payload, "items", [first_item]),
    ):
        if value != "missing":
            container[name] = value
    raw = {"type": "SAVED_PAYMENT", "payload": payload, **({"version": version} if version else {})}
    return Envelope(type="SAVED_PAYMENT", payload=payload, raw=raw)


maybe_value = st.one_of(st.just("missing"), st.sampled_from(VALUES))
a_filter = st.one_of(
    st.none(),
    st.lists(st.sampled_from(CLAUSES), min_size=1, max_size=3).map(
        lambda clauses: " && ".join(f"({clause})" for clause in clauses)
    ),
)
an_event = st.tuples(maybe_value, maybe_value, maybe_value, st.sampled_from([None, "v3"]))


@settings(max_examples=400, deadline=None)
@given(
    chosen=st.lists(a_filter, min_size=1, max_size=12),
    events=st.lists(an_event, min_size=1, max_size=4),
)
def test_matching_through_the_index_equals_evaluating_every_filter(
    chosen: list[str | None], events: list[tuple[Any, Any, Any, str | None]]
) -> None:
    triggers = [compiled(n, f, version="v3" if n % 5 == 4 else None) for n, f in enumerate(chosen)]
    index = TriggerIndex(triggers, index_from=1)
    for status, tier, first_item, version in events:
        envelope = envelope_of(status, tier, first_item, version)
        document = {**envelope.raw, "event": envelope.payload}

        assert ids(index.match(envelope, document)) == brute_force(triggers, envelope)


@pytest.mark.parametrize(
    ("value", "filter_"),
    list(
        itertools.product(
            [1, 1.0, True, 0, False, None, "1", "x", "missing"],
            [
                "event.status == `1`",
                "event.status == `true`",
                "event.status != `1.0`",
                "event.status >= `1`",
                "event.status > `1`",
                "event.status > `0` && event.status < `1.0`",
                "to_number(event.status) == `1`",
                "contains([`1`], event.status)",  # Python's `in`: true for true
                "contains([`false`], event.status)",  # and for 0
                "event.status == 'x' || event.status == `false`",
                "starts_with(event.status, '1')",
                "event.status",
                "!event.status",
            ],
        )
    ),
)
def test_each_shape_agrees_with_evaluation_on_numbers_booleans_and_strings(
    value: Any, filter_: str
) -> None:
    triggers = [compiled(0, filter_)]
    envelope = envelope_of(value, "missing", "missing", None)
    document = {**envelope.raw, "event": envelope.payload}

    assert ids(TriggerIndex(triggers, index_from=1).match(envelope, document)) == brute_force(
        triggers, envelope
    )


def candidate_ids(index: CandidateIndex, payload: dict[str, Any]) -> list[str]:
    return [compiled.trigger.id for compiled, _ in index.candidates({"event": payload})]


N = 1_000  # the same answers at 10,000, slower to compile


@pytest.mark.parametrize(
    ("make_filter", "payload", "expected"),
    [
        (lambda n: f"event.account == 'treasury:{n}'", {"account": "treasury:242"}, [242]),
        (lambda n: f"event.account == 'treasury:{n}'", {"account": "users:1"}, []),
        (lambda n: f"event.amount > `{n}`", {"amount": 3}, [0, 1, 2]),
        (lambda n: f"`{n}` >= event.amount", {"amount": N - 1.5}, [N - 1]),
        (
            lambda n: f"event.amount > `{10 * n}` && event.amount <= `{10 * n + 10}`",
            {"amount": 5_000},
            [499],
        ),
        (lambda n: f"to_number(event.ref) < `{n - N + 3}`", {"ref": "1.5"}, [N - 1]),
        (lambda n: f"starts_with(event.ref, 'inv-{n}-')", {"ref": "inv-42-7"}, [42]),
        (
            lambda n: f"event.kind == 'a{n}' || event.kind == 'b{n}'",
            {"kind": "b77"},
            [77],
        ),
        (lambda n: f"contains(['a{n}', 'b{n}'], event.kind)", {"kind": "a5"}, [5]),
        (lambda n: f"event.done && event.id == `{n}`", {"id": 12, "done": True}, [12]),
        (lambda n: f"!(event.done) && event.id == `{n}`", {"id": 12, "done": True}, [12]),
    ],
)
def test_thousands_of_triggers_of_one_shape_propose_only_those_the_value_can_match(
    make_filter: Any, payload: dict[str, Any], expected: list[int]
) -> None:
    index = CandidateIndex([compiled(n, make_filter(n)) for n in range(N)])

    assert candidate_ids(index, payload) == [f"t{n}" for n in expected]


def test_a_type_with_fewer_triggers_than_are_worth_indexing_has_them_all_as_candidates() -> None:
    few = [compiled(n, f"event.account == 'treasury:{n}'") for n in range(INDEX_FROM - 1)]
    many = [*few, compiled(INDEX_FROM, f"event.account == 'treasury:{INDEX_FROM}'")]

    assert candidate_ids(CandidateIndex(few), {"account": "users:1"}) == ["t0", "t1"]
    assert candidate_ids(CandidateIndex(many), {"account": "users:1"}) == []


def test_anything_but_proposes_every_trigger_but_the_one_the_value_equals() -> None:
    index = CandidateIndex([compiled(n, f"event.kind != 'k{n}'") for n in range(N)])

    found = index.candidates({"event": {"kind": "k3"}})

    assert [c.trigger.id for c, _ in found] == [f"t{n}" for n in range(N) if n != 3]
    assert all(known for _, known in found)  # each whole filter is decided by the index


def test_a_prefix_of_a_value_that_is_not_a_string_proposes_the_triggers_that_will_fail() -> None:
    index = CandidateIndex([compiled(n, f"starts_with(event.ref, 'r{n}')") for n in range(3)])

    assert index.candidates({"event": {"ref": 7}}) == [
        (compiled(n, f"starts_with(event.ref, 'r{n}')"), False) for n in range(3)
    ]


def test_a_whole_filter_the_index_decides_is_known_true_and_a_partial_one_is_not() -> None:
    whole, partial = compiled(0, "event.amount > `1`"), compiled(1, "event.amount > `1` && a")
    index = CandidateIndex([whole, partial], index_from=1)

    assert index.candidates({"event": {"amount": 2}}) == [(whole, True), (partial, False)]
