"""Planning a YAML reconciliation: what to write so the stored YAML triggers equal the file's.

Pure: given the YAML triggers stored and those wanted, `plan_reconcile` says which to insert
or update, which to remove, and the counts reported to the operator. The store applies the
plan in one transaction (sql.py); nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from trigger_daemon.adapters.store.rows import definition_values
from trigger_daemon.core.triggers import Trigger
from trigger_daemon.ports import ReconcileResult


def unique_by_id(triggers: Sequence[Trigger]) -> dict[str, Trigger]:
    """The wanted triggers by id; ValueError when two share one (two share a name)."""
    by_id = {trigger.id: trigger for trigger in triggers}
    if len(by_id) != len(triggers):
        raise ValueError("YAML triggers must have distinct ids (distinct names)")
    return by_id


@dataclass(frozen=True, slots=True)
class ReconcilePlan:
    upsert: list[Trigger]  # added and changed, by id: inserted if absent, then updated
    removed: list[str]  # ids, sorted
    result: ReconcileResult

    @property
    def changes_triggers(self) -> bool:
        return bool(self.upsert or self.removed)


def plan_reconcile(stored: Mapping[str, Trigger], wanted: Mapping[str, Trigger]) -> ReconcilePlan:
    """What turns `stored` into `wanted` (both by id). A trigger is changed when a column of
    its definition differs; its created_at and source do not count."""
    added = [trigger for id_, trigger in wanted.items() if id_ not in stored]
    changed = [
        trigger
        for id_, trigger in wanted.items()
        if id_ in stored and definition_values(stored[id_]) != definition_values(trigger)
    ]
    removed = [id_ for id_ in stored if id_ not in wanted]
    unchanged = len(wanted) - len(added) - len(changed)
    result = ReconcileResult(len(added), len(changed), len(removed), unchanged)
    # In key order, the order in which every store write locks rows (see occurrence_writes.py).
    upsert = sorted(added + changed, key=lambda trigger: trigger.id)
    return ReconcilePlan(upsert=upsert, removed=sorted(removed), result=result)
