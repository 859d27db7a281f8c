"""Planning a YAML reconciliation: what is added, changed, removed and left alone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from trigger_daemon.adapters.store.reconcile import plan_reconcile, unique_by_id
from trigger_daemon.core.triggers import Trigger, TriggerSource, yaml_trigger_id
from trigger_daemon.ports import ReconcileResult

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def yaml(name: str, **fields: Any) -> Trigger:
    return Trigger.model_validate(
        {
            "id": yaml_trigger_id(name),
            "name": name,
            "event": "SAVED_PAYMENT",
            "workflowID": "wf-1",
            "createdAt": T0,
            "source": TriggerSource.YAML,
            **fields,
        }
    )


def by_id(*triggers: Trigger) -> dict[str, Trigger]:
    return {trigger.id: trigger for trigger in triggers}


def ids(*names: str) -> list[str]:
    return sorted(yaml_trigger_id(name) for name in names)


@pytest.mark.parametrize(
    ("stored", "wanted", "upsert", "removed", "result"),
    [
        pytest.param([], [], [], [], ReconcileResult(), id="nothing"),
        pytest.param(
            [], [yaml("a"), yaml("b")], ids("a", "b"), [], ReconcileResult(added=2), id="added"
        ),
        pytest.param(
            [yaml("a"), yaml("b")],
            [yaml("a"), yaml("b")],
            [],
            [],
            ReconcileResult(unchanged=2),
            id="unchanged",
        ),
        pytest.param(
            [yaml("a")],
            [yaml("a", createdAt=datetime(2030, 1, 1, tzinfo=UTC))],
            [],
            [],
            ReconcileResult(unchanged=1),
            id="created_at is not part of the definition",
        ),
        pytest.param(
            [yaml("a")],
            [yaml("a", workflowID="wf-2")],
            ids("a"),
            [],
            ReconcileResult(changed=1),
            id="workflow changed",
        ),
        pytest.param(
            [yaml("a")],
            [yaml("a", filter="event.status == 'SUCCEEDED'")],
            ids("a"),
            [],
            ReconcileResult(changed=1),
            id="filter added",
        ),
        pytest.param(
            [yaml("a", vars={"id": "event.id"})],
            [yaml("a", vars={"id": "event.payload.id"})],
            ids("a"),
            [],
            ReconcileResult(changed=1),
            id="var changed",
        ),
        pytest.param(
            [yaml("a")],
            [yaml("a", retry={"maxAttempts": 3})],
            ids("a"),
            [],
            ReconcileResult(changed=1),
            id="retry override added",
        ),
        pytest.param(
            [yaml("a"), yaml("b")], [], [], ids("a", "b"), ReconcileResult(removed=2), id="removed"
        ),
        pytest.param(
            [yaml("kept"), yaml("edited"), yaml("dropped")],
            [yaml("new"), yaml("edited", event="COMMITTED_TRANSACTIONS"), yaml("kept")],
            ids("new", "edited"),
            ids("dropped"),
            ReconcileResult(added=1, changed=1, removed=1, unchanged=1),
            id="all at once",
        ),
    ],
)
def test_plan_turns_the_stored_yaml_triggers_into_the_wanted_ones(
    stored: list[Trigger],
    wanted: list[Trigger],
    upsert: list[str],
    removed: list[str],
    result: ReconcileResult,
) -> None:
    plan = plan_reconcile(by_id(*stored), by_id(*wanted))

    assert [trigger.id for trigger in plan.upsert] == upsert  # in id order: the lock order
    assert plan.removed == removed
    assert plan.result == result
    assert plan.changes_triggers is bool(upsert or removed)


def test_an_upsert_carries_the_wanted_definition() -> None:
    wanted = yaml("a", workflowID="wf-2")

    plan = plan_reconcile(by_id(yaml("a")), by_id(wanted))

    assert plan.upsert == [wanted]


def test_wanted_triggers_are_keyed_by_id() -> None:
    a, b = yaml("a"), yaml("b")

    assert unique_by_id([a, b]) == {a.id: a, b.id: b}


def test_two_wanted_triggers_with_one_id_are_refused() -> None:
    with pytest.raises(ValueError, match="distinct ids"):
        unique_by_id([yaml("a"), yaml("a", workflowID="wf-2")])
