"""The prefilter finds exactly what evaluating every filter finds, in the same order, with the
same filter failures; and it recognises only the equalities it can answer."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_daemon.core.events import Envelope
from trigger_daemon.core.expressions import ExpressionError, compile_expression, is_truthy
from trigger_daemon.core.matching import MatchResult, TriggerIndex
from trigger_daemon.core.prefilter import LeadingEquality, leading_equality
from trigger_daemon.core.triggers import CompiledTrigger, Trigger, compile_trigger, parse_definition

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LITERALS = ["'x'", "'1'", "`1`", "`1.0`", "`0`", "`2`", "`true`", "`false`", "`null`", '`"x"`']
VALUES: list[Any] = [1, 1.0, 0, 2, True, False, None, "x", "1", "", [1], {"a": 1}]
FILTERS = [
    *(f"event.status == {literal}" for literal in LITERALS),
    *(f"{literal} == event.status" for literal in LITERALS),
    *(f"event.meta.tier == {literal}" for literal in LITERALS),
    *(f"event.items[0] == {literal}" for literal in LITERALS),
    "event.items[-1] == `1`",
    "event.items[3] == `null`",
    "event.status[0] == 'x'",  # an index of a non-array is null
    "event.status.deeper == `null`",  # so is a field of a non-object
    "@.event.status == 'x'",
    "event.status == 'x' && event.meta.tier == `1`",
    "event.status == `1` && abs(event.status) > `0`",  # fails unless the equality stops it
    "abs(event.status) > `0` && event.status == `1`",  # fails first: not indexed
    "event.status != 'x'",
    "event.status == 'x' || event.meta.tier == `2`",
    "event.status == event.meta.tier",
    "event.status",
    None,
]


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


maybe_value = st.one_of(st.just("missing"), st.sampled_from(VALUES))


@settings(max_examples=300, deadline=None)
@given(
    chosen=st.lists(st.sampled_from(FILTERS), min_size=1, max_size=12),
    status=maybe_value,
    tier=maybe_value,
    first_item=maybe_value,
    version=st.sampled_from([None, "v3"]),
)
def test_matching_through_the_index_equals_evaluating_every_filter(
    chosen: list[str | None], status: Any, tier: Any, first_item: Any, version: str | None
) -> None:
    triggers = [compiled(n, f, version="v3" if n % 5 == 4 else None) for n, f in enumerate(chosen)]
    payload: dict[str, Any] = {"meta": {}}
    for container, name, value in (
        (payload, "status", status),
        (payload["meta"], "tier", tier),
        (payload, "items", [first_item]),
    ):
        if value != "missing":
            container[name] = value
    raw = {"type": "SAVED_PAYMENT", "payload": payload, **({"version": version} if version else {})}
    envelope = Envelope(type="SAVED_PAYMENT", payload=payload, raw=raw)
    document = {**raw, "event": payload}

    assert ids(TriggerIndex(triggers).match(envelope, document)) == brute_force(triggers, envelope)


def test_ten_thousand_equalities_on_one_field_find_the_one_that_matches() -> None:
    triggers = [compiled(n, f"event.account == 'treasury:{n}'") for n in range(10_000)]
    index = TriggerIndex(triggers)
    payload = {"account": "treasury:4242"}
    envelope = Envelope(type="SAVED_PAYMENT", payload=payload, raw={"payload": payload})

    assert ids(index.match(envelope, {"event": payload})) == (["t4242"], [])


@pytest.mark.parametrize(
    ("filter_", "indexed"),
    [
        ("event.status == 'x'", True),
        ("'x' == event.status", True),
        ("event.a[0].b == `1`", True),
        ("@ == `null`", True),
        ("event.status == 'x' && event.amount > `1`", True),
        ("(event.status == 'x' && event.a) && event.b", True),
        ("event.status == 'x' && (event.a && event.b)", True),
        ("event.amount > `1` && event.status == 'x'", False),  # the left side runs first
        ("(event.amount > `1` && event.status == 'x') && event.b", False),
        ("event.status == `NaN`", False),  # NaN equals nothing, not even itself
        ("event.status == 'x' || event.b", False),
        ("event.status != 'x'", False),
        ("event.status == event.other", False),
        ("to_string(event.status) == 'x'", False),
        ("event.tags == `[1]`", False),
        ("event.items[*].id == 'x'", False),  # a projection builds a list
    ],
)
def test_only_a_leading_path_equals_scalar_is_indexed(filter_: str, indexed: bool) -> None:
    assert (leading_equality(compile_expression(filter_)) is not None) is indexed


@pytest.mark.parametrize(
    ("filter_", "path", "key", "whole"),
    [
        ("event.status == 'x'", ("event", "status"), ("string", "x"), True),
        ("`1.0` == event.a[0]", ("event", "a", 0), ("number", 1.0), True),
        ("@ == `null`", (), ("null", None), True),
        ("event.ok == `true` && event.b", ("event", "ok"), ("bool", True), False),
        ("(event.ok == `false` && event.b) && event.c", ("event", "ok"), ("bool", False), False),
    ],
)
def test_the_leading_equality_names_its_path_key_and_whether_it_is_the_whole_filter(
    filter_: str, path: tuple[str | int, ...], key: tuple[str, Any], whole: bool
) -> None:
    assert leading_equality(compile_expression(filter_)) == LeadingEquality(path, key, whole)
