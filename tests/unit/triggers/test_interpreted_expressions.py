"""An expression the compiler cannot take is interpreted, counted and logged once per trigger.

Every expression of the language compiles today, so the compiler is made to refuse one here."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from prometheus_client import REGISTRY

from trigger_daemon.core import expressions
from trigger_daemon.core.jmespath_compiler import NotCompilable, compile_tree
from trigger_daemon.testing import InMemoryStore

from ..engine.builders import catalog_with

REFUSED = "length(payload.items) > `1`"


def interpreted_count() -> float:
    return REGISTRY.get_sample_value("trigger_daemon_interpreted_expressions_total") or 0.0


def refusing_compiler(tree: Any) -> Any:
    if tree["type"] == "comparator":  # the filter above, not the var
        raise NotCompilable("unsupported expression node 'comparator'")
    return compile_tree(tree)


async def test_a_trigger_with_an_interpreted_filter_is_logged_once_and_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(expressions, "compile_tree", refusing_compiler)
    counted_before = interpreted_count()
    store = InMemoryStore()
    definition = {
        "name": "big-orders",
        "event": "SAVED_PAYMENT",
        "workflowID": "w",
        "filter": REFUSED,
        "vars": {"id": "payload.id"},
    }
    with structlog.testing.capture_logs() as logs:
        catalog = await catalog_with(store, definition)
        await catalog.refresh()  # unchanged: reused, not compiled (nor logged) again

    [trigger] = await store.list_triggers()
    compiled = catalog.compiled(trigger.id)
    assert compiled is not None
    assert compiled.filter is not None
    assert not compiled.filter.compiled
    assert compiled.vars["id"].compiled
    assert compiled.evaluate_filter({"payload": {"items": [1, 2]}}) is True
    interpreted = [log for log in logs if log["event"] == "trigger.interpreted"]
    assert interpreted == [
        {
            "event": "trigger.interpreted",
            "log_level": "warning",
            "trigger_id": trigger.id,
            "expressions": [REFUSED],
        }
    ]
    assert interpreted_count() == counted_before + 1
