"""Advice on valid triggers: shapes that work as written but rarely do what was meant.

- trigger_warnings: all of the below, one line each.
- event_type_warnings: an event type Formance does not publish (`COMMITED_TRANSACTIONS`), with
  the nearest one it does.
- var_warnings: a var `to_string(path)` renders the string "null" when the field is missing,
  so the workflow runs with "null" instead of the occurrence failing.
"""

from __future__ import annotations

import difflib

from trigger_daemon.core.expression_syntax import FieldPath, FunctionCall
from trigger_daemon.core.triggers import CompiledTrigger

# The types Formance publishes: ledger v1-v2, payments v0-v3, orchestration v2.
FORMANCE_EVENT_TYPES = frozenset(
    {
        "COMMITTED_TRANSACTIONS",
        "REVERTED_TRANSACTION",
        "SAVED_METADATA",
        "DELETED_METADATA",
        "CONNECTOR_RESET",
        "SAVED_ACCOUNT",
        "SAVED_BALANCE",
        "SAVED_BANK_ACCOUNT",
        "SAVED_PAYMENT",
        "SAVED_POOL",
        "DELETED_POOL",
        "SAVED_TRANSFER_INITIATION",
        "DELETED_TRANSFER_INITIATION",
        "SAVED_PAYMENT_INITIATION",
        "SAVED_PAYMENT_INITIATION_ADJUSTMENT",
        "SAVED_PAYMENT_INITIATION_RELATED_PAYMENT",
        "STARTED_WORKFLOW",
        "STARTED_WORKFLOW_STAGE",
        "SUCCEEDED_WORKFLOW",
        "SUCCEEDED_WORKFLOW_STAGE",
        "FAILED_WORKFLOW",
        "FAILED_WORKFLOW_STAGE",
        "SUCCEEDED_TRIGGER",
        "FAILED_TRIGGER",
    }
)


def trigger_warnings(compiled: CompiledTrigger) -> list[str]:
    return [*event_type_warnings(compiled), *var_warnings(compiled)]


def event_type_warnings(compiled: CompiledTrigger) -> list[str]:
    """A line when the trigger's event type is not one Formance publishes."""
    event = compiled.trigger.event
    if event in FORMANCE_EVENT_TYPES:
        return []
    nearest = difflib.get_close_matches(event.upper(), sorted(FORMANCE_EVENT_TYPES), n=1)
    hint = f"; did you mean {nearest[0]}?" if nearest else ""
    return [
        f"event: {event} is not an event type Formance publishes: the trigger matches only "
        f"events another producer sends with that type{hint}"
    ]


def var_warnings(compiled: CompiledTrigger) -> list[str]:
    """One line per var whose expression turns a missing field into a string."""
    warnings = []
    for name, expression in compiled.vars.items():
        node = expression.syntax
        if (
            isinstance(node, FunctionCall)
            and node.name == "to_string"
            and len(node.arguments) == 1
            and isinstance(node.arguments[0], FieldPath)
        ):
            warnings.append(
                f'vars.{name}: {expression.source} renders the string "null" when the field '
                "is missing, and the workflow runs with it; use the plain path inside it: "
                "numbers and strings render as they are, and a missing field fails the "
                "occurrence instead"
            )
    return warnings
