"""Plain JMESPath paths (`event.transactions[0].postings[0].destination`) walked directly.

Most filters and vars are paths, or start with one. The interpreter visits one syntax-tree
node per step, checking bounds as it goes; walking the steps directly gives the same value
(null when a field of a non-object, an index of a non-array or out of range is asked for)
about ten times faster. Imports nothing from the daemon.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Path = tuple[str | int, ...]  # object keys (str) and array indexes (int), outermost first


def plain_path(node: Mapping[str, Any]) -> Path | None:
    """The steps of a syntax tree that is a plain path (fields, indexes, `@`), else None."""
    kind = node["type"]
    if kind == "field":
        return (str(node["value"]),)
    if kind == "index" and isinstance(node["value"], int):
        return (node["value"],)
    if kind == "current":
        return ()
    if kind in ("subexpression", "index_expression"):
        steps: list[str | int] = []
        for child in node["children"]:
            inner = plain_path(child)
            if inner is None:
                return None
            steps.extend(inner)
        return tuple(steps)
    return None


def walk(document: Any, path: Path) -> Any:
    """The value at `path`, as JMESPath's interpreter finds it (null when it is not there)."""
    value = document
    for step in path:
        if isinstance(step, str):
            if not isinstance(value, dict):
                return None
            value = value.get(step)
        else:
            if not isinstance(value, list):
                return None
            try:
                value = value[step]
            except IndexError:
                return None
    return value
