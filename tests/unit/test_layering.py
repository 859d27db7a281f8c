"""The architecture, enforced: the core is pure, adapters stay apart, one module composes them.

- `core/` imports the standard library, jmespath, orjson, pydantic, itself and the project's
  exception tree (`errors.py`, which imports nothing of the project): nothing else.
- An adapter (`adapters/<name>/`) never imports another adapter.
- Only the composition root (`app.py`) imports adapters.
- The fakes (`testing/`) know only the ports and the core; the stub orchestration API
  (`devtools/stub_orchestration.py`) imports nothing of the daemon, as an outside system.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import trigger_daemon

PACKAGE = Path(trigger_daemon.__file__).parent
CORE_THIRD_PARTY = {"jmespath", "orjson", "pydantic"}
COMPOSITION_ROOT = "trigger_daemon.app"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved)."""
    names: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            # `from trigger_daemon.adapters import kafka` imports the module too.
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def project_modules() -> dict[str, set[str]]:
    return {module_name(path): imported_modules(path) for path in sorted(PACKAGE.rglob("*.py"))}


def adapter_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] == ["trigger_daemon", "adapters"] and len(parts) >= 3:
        return parts[2]
    return None


def test_the_core_imports_nothing_but_the_standard_library_its_libraries_and_errors() -> None:
    modules = {name: imports for name, imports in project_modules().items()}
    core = {
        name: imports for name, imports in modules.items() if name.startswith("trigger_daemon.core")
    }
    offenders = [
        f"{name} imports {imported}"
        for name, imports in core.items()
        for imported in imports
        if not (
            imported.split(".")[0] in sys.stdlib_module_names
            or imported.split(".")[0] in CORE_THIRD_PARTY
            or imported.startswith(("trigger_daemon.core", "trigger_daemon.errors"))
            or imported == "__future__"
            or imported == "trigger_daemon"  # `from trigger_daemon import __version__`
        )
    ]
    assert offenders == []
    assert len(core) >= 8  # the test really looked at the core


def test_the_exception_tree_imports_nothing_of_the_project() -> None:
    imports = project_modules()["trigger_daemon.errors"]
    assert [name for name in imports if name.startswith("trigger_daemon")] == []


def test_no_adapter_imports_another() -> None:
    offenders = []
    for name, imports in project_modules().items():
        adapter = adapter_of(name)
        if adapter is None:
            continue
        for imported in imports:
            other = adapter_of(imported)
            if other is not None and other != adapter:
                offenders.append(f"{name} imports {imported}")
    assert offenders == []


def test_only_the_composition_root_imports_adapters() -> None:
    modules = project_modules()
    importers = sorted(
        name
        for name, imports in modules.items()
        if adapter_of(name) is None and any(adapter_of(i) for i in imports)
    )
    assert importers == [COMPOSITION_ROOT]
    assert {adapter_of(name) for name in modules} >= {"api", "kafka", "orchestration", "store"}


def test_the_fakes_know_only_the_ports_and_what_the_ports_speak_of() -> None:
    allowed = ("trigger_daemon.core", "trigger_daemon.errors", "trigger_daemon.ports")
    offenders = [
        f"{name} imports {imported}"
        for name, imports in project_modules().items()
        if name.startswith("trigger_daemon.testing")
        for imported in imports
        if imported.startswith("trigger_daemon")
        and not imported.startswith((*allowed, "trigger_daemon.testing"))
    ]
    assert offenders == []


def test_the_stub_orchestration_api_stays_an_outside_system() -> None:
    imports = project_modules()["trigger_daemon.devtools.stub_orchestration"]
    assert [name for name in imports if name.startswith("trigger_daemon")] == []
