"""The core stays pure: it imports only the standard library, jmespath, pydantic, itself
and the project's exception tree."""

import ast
import sys
from pathlib import Path

import trigger_daemon.core

ALLOWED_THIRD_PARTY = {"jmespath", "orjson", "pydantic"}
ALLOWED_PROJECT = ("trigger_daemon.core", "trigger_daemon.errors")
CORE = Path(trigger_daemon.core.__file__).parent


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_imports_nothing_but_the_standard_library_jmespath_and_pydantic() -> None:
    offenders = []
    for path in sorted(CORE.glob("*.py")):
        for module in imported_modules(path):
            top = module.split(".")[0]
            allowed = (
                top in sys.stdlib_module_names
                or top in ALLOWED_THIRD_PARTY
                or module.startswith(ALLOWED_PROJECT)
                or module == "__future__"
            )
            if not allowed:
                offenders.append(f"{path.name} imports {module}")
    assert offenders == []
    assert len(list(CORE.glob("*.py"))) >= 6  # the test really looked at the core
