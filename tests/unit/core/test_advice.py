"""Advice on valid triggers: a var that turns a missing field into the string "null"."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from trigger_daemon.core.advice import (
    FORMANCE_EVENT_TYPES,
    event_type_warnings,
    trigger_warnings,
    var_warnings,
)
from trigger_daemon.core.triggers import (
    CompiledTrigger,
    Trigger,
    compile_trigger,
    parse_definition,
)


def compiled_from(raw: dict[str, Any]) -> CompiledTrigger:
    definition = parse_definition(raw)
    return compile_trigger(Trigger(**definition.model_dump(), id="t", created_at=datetime.now(UTC)))


def compiled(vars_: dict[str, str]) -> CompiledTrigger:
    return compiled_from({"name": "t", "event": "SAVED_PAYMENT", "workflowID": "w", "vars": vars_})


@pytest.mark.parametrize(
    "expression",
    ["to_string(event.amount)", "to_string(event.transactions[0].id)", "to_string(amount)"],
)
def test_to_string_of_a_path_is_flagged_with_the_fix(expression: str) -> None:
    [warning] = var_warnings(compiled({"amount": expression}))
    assert warning == (
        f'vars.amount: {expression} renders the string "null" when the field is missing, and '
        "the workflow runs with it; use the plain path inside it: numbers and strings render "
        "as they are, and a missing field fails the occurrence instead"
    )


@pytest.mark.parametrize(
    "expression",
    [
        "event.amount",
        "not_null(event.amount, event.total)",
        "to_string(event.amount) || 'none'",
        "to_string(`1`)",
        "join(',', event.tags)",
    ],
)
def test_other_vars_are_not_flagged(expression: str) -> None:
    assert var_warnings(compiled({"v": expression})) == []


def test_the_shipped_examples_take_no_advice() -> None:
    examples = Path(__file__).parents[3] / "config" / "triggers" / "formance-examples.yaml"
    for raw in yaml.safe_load(examples.read_text())["triggers"]:
        assert var_warnings(compiled_from(raw)) == [], raw["name"]


@pytest.mark.parametrize(
    ("event", "nearest"),
    [
        ("COMMITED_TRANSACTIONS", "COMMITTED_TRANSACTIONS"),
        ("saved_payment", "SAVED_PAYMENT"),
        ("SAVED_PAYMENTS", "SAVED_PAYMENT"),
    ],
)
def test_a_misspelt_event_type_is_flagged_with_the_nearest_formance_type(
    event: str, nearest: str
) -> None:
    trigger = compiled_from({"name": "t", "event": event, "workflowID": "w"})
    assert event_type_warnings(trigger) == [
        f"event: {event} is not an event type Formance publishes: the trigger matches only "
        f"events another producer sends with that type; did you mean {nearest}?"
    ]


def test_a_type_far_from_any_formance_type_is_flagged_without_a_guess() -> None:
    trigger = compiled_from({"name": "t", "event": "INVOICE_PAID", "workflowID": "w"})
    [warning] = event_type_warnings(trigger)
    assert "did you mean" not in warning


@pytest.mark.parametrize("event", sorted(FORMANCE_EVENT_TYPES))
def test_every_formance_type_is_taken_as_it_is(event: str) -> None:
    trigger = compiled_from({"name": "t", "event": event, "workflowID": "w"})
    assert trigger_warnings(trigger) == []
