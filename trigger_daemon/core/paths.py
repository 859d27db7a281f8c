"""Plain JMESPath paths (`event.transactions[0].postings[0].destination`) walked directly.

Most filters and vars are paths, or start with one (core.expression_syntax finds them). The
interpreter visits one syntax-tree node per step, checking bounds as it goes; walking the steps
directly gives the same value (null when a field of a non-object, an index of a non-array or
out of range is asked for) about ten times faster.
"""

from __future__ import annotations

from typing import Any

Path = tuple[str | int, ...]  # object keys (str) and array indexes (int), outermost first


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
