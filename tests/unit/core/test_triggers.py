"""Trigger validation messages, compilation and matching through the index."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from trigger_daemon.core.events import Envelope
from trigger_daemon.core.expressions import ExpressionError, document_for
from trigger_daemon.core.matching import TriggerIndex
from trigger_daemon.core.retry import RetryPolicy
from trigger_daemon.core.triggers import (
    CompiledTrigger,
    Trigger,
    compile_trigger,
    parse_definition,
    yaml_trigger_id,
)
from trigger_daemon.errors import TriggerValidationError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def trigger(n: int = 0, **fields: Any) -> CompiledTrigger:
    definition = {"event": "SAVED_PAYMENT", "workflowID": "wf", **fields}
    parsed = parse_definition(definition)
    return compile_trigger(
        Trigger(**parsed.model_dump(), id=f"t{n}", created_at=T0 + timedelta(seconds=n))
    )


def event(payload: dict[str, Any], **envelope: Any) -> Envelope:
    raw = {"type": "SAVED_PAYMENT", "payload": payload, **envelope}
    return Envelope(type=raw["type"], payload=payload, raw=raw)


def problems_of(definition: object) -> list[str]:
    with pytest.raises(TriggerValidationError) as caught:
        parse_definition(definition)
    return caught.value.problems


def test_missing_event_and_workflow_are_named() -> None:
    assert problems_of({"name": "x"}) == ["event: is required", "workflowID: is required"]


def test_a_misspelt_field_gets_a_suggestion() -> None:
    problems = problems_of({"event": "E", "workflowId": "w"})
    assert "workflowId: unknown field (did you mean 'workflowID'?)" in problems


def test_every_bad_expression_is_listed_with_its_text() -> None:
    problems = problems_of(
        {
            "event": "E",
            "workflowID": "w",
            "filter": 'event.status == "SUCCEEDED"',
            "vars": {"ok": "event.id", "bad": "to_string("},
        }
    )
    assert len(problems) == 2
    assert problems[0].startswith("filter 'event.status == \"SUCCEEDED\"': ")
    assert "write 'SUCCEEDED' for the string" in problems[0]
    assert problems[1].startswith("vars.bad 'to_string(': ")


def test_non_string_vars_are_rejected() -> None:
    assert problems_of({"event": "E", "workflowID": "w", "vars": {"n": 5}}) == [
        "vars.n: Input should be a valid string"
    ]


def test_a_non_mapping_is_rejected() -> None:
    assert problems_of(["event"]) == ["a trigger must be a mapping, got list"]


def test_yaml_ids_are_stable_uuids_of_the_name() -> None:
    assert yaml_trigger_id("large-deposit") == yaml_trigger_id("large-deposit")
    assert yaml_trigger_id("large-deposit") != yaml_trigger_id("other")


def test_index_matches_by_type_version_and_filter() -> None:
    index = TriggerIndex(
        [
            trigger(1, filter="event.status == 'SUCCEEDED'"),
            trigger(2, version="v3"),
            trigger(3, event="SAVED_ACCOUNT"),
            trigger(4),
        ]
    )
    succeeded_v2 = event({"status": "SUCCEEDED"}, version="v2")
    result = index.match(succeeded_v2, document_for(succeeded_v2))
    assert [c.trigger.id for c in result.triggers] == ["t1", "t4"]
    pending_v3 = event({"status": "PENDING"}, version="v3")
    result = index.match(pending_v3, document_for(pending_v3))
    assert [c.trigger.id for c in result.triggers] == ["t2", "t4"]


def test_unknown_event_types_meet_no_trigger() -> None:
    index = TriggerIndex([trigger(1)])
    other = Envelope(type="SAVED_ACCOUNT", payload={}, raw={"type": "SAVED_ACCOUNT"})
    assert index.match(other, document_for(other)).triggers == ()
    assert not index.has_type("SAVED_ACCOUNT")


def test_a_filter_that_raises_is_a_non_match_reported_with_its_trigger() -> None:
    index = TriggerIndex([trigger(1, filter="abs(event.status) > `1`"), trigger(2)])
    payment = event({"status": "SUCCEEDED"})
    result = index.match(payment, document_for(payment))
    assert [c.trigger.id for c in result.triggers] == ["t2"]
    assert result.filter_failures[0].trigger_id == "t1"
    assert "abs" in result.filter_failures[0].error


def test_vars_render_exact_big_integers_and_name_the_failing_var() -> None:
    compiled = trigger(1, vars={"amount": "to_string(event.amount)", "raw": "event.amount"})
    payment = event({"amount": 2**64 + 7})
    assert compiled.render_vars(document_for(payment)) == {
        "amount": "18446744073709551623",
        "raw": "18446744073709551623",
    }
    missing = trigger(2, vars={"ref": "event.reference"})
    with pytest.raises(ExpressionError, match=r"var 'ref' \(event.reference\): .*null"):
        missing.render_vars(document_for(payment))


def test_a_trigger_may_override_part_of_the_retry_policy() -> None:
    parsed = parse_definition(
        {"event": "E", "workflowID": "w", "retry": {"maxAttempts": 2, "maxBackoffSeconds": 5}}
    )
    assert parsed.retry is not None
    assert parsed.retry.over(RetryPolicy(10, 0.5, 60)) == RetryPolicy(2, 0.5, 5)


def test_a_retry_override_out_of_bounds_is_named() -> None:
    problems = problems_of({"event": "E", "workflowID": "w", "retry": {"maxAttempts": 0}})
    assert problems == ["retry.maxAttempts: Input should be greater than or equal to 1"]


def test_bad_flow_control_values_are_named() -> None:
    problems = problems_of(
        {
            "event": "E",
            "workflowID": "w",
            "rateLimit": {"requestsPerUnit": 0, "unit": "day", "burst": 0},
            "maxConcurrency": 0,
        }
    )
    assert problems == [
        "rateLimit.requestsPerUnit: Input should be greater than or equal to 1",
        "rateLimit.unit: Input should be 'second', 'minute' or 'hour'",
        "rateLimit.burst: Input should be greater than or equal to 1",
        "maxConcurrency: Input should be greater than or equal to 1",
    ]
    assert problems_of({"event": "E", "workflowID": "w", "rateLimits": {}}) == [
        "rateLimits: unknown field (did you mean 'rateLimit'?)"
    ]
