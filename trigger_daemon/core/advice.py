"""Advice on valid triggers: shapes that work as written but rarely do what was meant.

var_warnings   a var `to_string(path)` renders the string "null" when the field is
               missing, so the workflow runs with "null" instead of failing the occurrence
"""

from __future__ import annotations

from trigger_daemon.core.expression_syntax import FieldPath, FunctionCall
from trigger_daemon.core.triggers import CompiledTrigger


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
