"""Config files for unit tests: write one, and read the message a broken one fails with."""

from pathlib import Path

import pytest

from trigger_daemon.config import load_config
from trigger_daemon.errors import ConfigError
from trigger_daemon.triggers.files import load_yaml_triggers


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def config_error(path: Path | None) -> str:
    """The ConfigError message of loading `path` (None: the environment alone) and its YAML
    triggers, as the daemon does at startup; fails the test when they load."""
    with pytest.raises(ConfigError) as caught:
        load_yaml_triggers(load_config(path))
    return str(caught.value)
