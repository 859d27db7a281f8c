"""YAML triggers: read from the config's `triggers` list and its `triggers_files` globs, and
validated as one set, so a bad file applies nothing."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import yaml

from trigger_daemon.config import LoadedConfig, load_yaml, yaml_problem
from trigger_daemon.core.triggers import TriggerDefinition, parse_definition
from trigger_daemon.errors import ConfigError, TriggerValidationError


def load_yaml_triggers(config: LoadedConfig) -> list[TriggerDefinition]:
    """Every YAML trigger from the config and its trigger files, validated as one set.

    Any problem anywhere raises ConfigError listing all of them, so nothing partial is applied.
    """
    problems: list[str] = []
    definitions: list[TriggerDefinition] = []
    seen: dict[str, str] = {}
    for origin, index, raw in _yaml_trigger_sources(config, problems):
        where = f"{origin}: triggers[{index}]"
        name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(name, str) and name:
            where += f" ({name})"
        try:
            definition = parse_definition(raw)
        except TriggerValidationError as exc:
            problems.extend(f"{where}: {problem}" for problem in exc.problems)
            continue
        if not definition.name:
            problems.append(f"{where}: name: is required for YAML triggers")
        elif definition.name in seen:
            problems.append(f"{where}: name: also used in {seen[definition.name]}")
        else:
            seen[definition.name] = where
            definitions.append(definition)
    if problems:
        raise ConfigError("\n".join(problems))
    return definitions


def _yaml_trigger_sources(config: LoadedConfig, problems: list[str]) -> list[tuple[str, int, Any]]:
    origin = str(config.path or "config")
    found = [(origin, index, raw) for index, raw in enumerate(config.settings.triggers)]
    for pattern, matches in triggers_file_matches(config):
        if not matches:
            problems.append(f"{origin}: triggers_files: {pattern!r} matches no file")
        for path in matches:
            found.extend(_triggers_in_file(path, problems))
    return found


def triggers_file_matches(config: LoadedConfig) -> list[tuple[str, list[Path]]]:
    """Each `triggers_files` glob with the files it matches now, sorted. Globs are relative
    to the config file's directory (the working directory without a file)."""
    base = config.path.parent if config.path is not None else Path.cwd()
    return [
        (pattern, [Path(name) for name in sorted(glob.glob(str(base / pattern)))])
        for pattern in config.settings.triggers_files
    ]


def _triggers_in_file(path: Path, problems: list[str]) -> list[tuple[str, int, Any]]:
    try:
        data = _read_yaml_any(path)
    except ConfigError as exc:
        problems.append(str(exc))
        return []
    if isinstance(data, dict) and set(data) == {"triggers"}:
        data = data["triggers"]
    if data is None:
        return []
    if not isinstance(data, list):
        problems.append(f"{path}: a triggers file holds a list of triggers (or `triggers:` list)")
        return []
    return [(str(path), index, raw) for index, raw in enumerate(data)]


def _read_yaml_any(path: Path) -> Any:
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None


def load_trigger_file(path: Path) -> TriggerDefinition:
    """One trigger that is not in the config (`test-trigger --trigger-file`, `backtest`): a YAML
    or JSON mapping, or a triggers file holding exactly one. Its name is optional."""
    data = _read_yaml_any(path)
    if isinstance(data, dict) and set(data) == {"triggers"}:
        data = data["triggers"]
    if isinstance(data, list):
        if len(data) != 1:
            raise ConfigError(f"{path}: holds {len(data)} triggers; give a file with one")
        data = data[0]
    try:
        return parse_definition(data)
    except TriggerValidationError as exc:
        raise ConfigError("\n".join(f"{path}: {problem}" for problem in exc.problems)) from None
