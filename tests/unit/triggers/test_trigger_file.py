"""load_trigger_file: one trigger outside the config, YAML or JSON, every problem named."""

from pathlib import Path

import pytest

from trigger_daemon.errors import ConfigError
from trigger_daemon.triggers.files import load_trigger_file


def test_reads_a_yaml_mapping_without_a_name(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("event: SAVED_PAYMENT\nworkflowID: wf\nfilter: payload.amount > `10`\n")
    definition = load_trigger_file(path)
    assert (definition.name, definition.event, definition.workflow_id) == (
        None,
        "SAVED_PAYMENT",
        "wf",
    )


def test_reads_json_and_a_triggers_list_of_one(tmp_path: Path) -> None:
    as_json = tmp_path / "t.json"
    as_json.write_text('{"event": "COMMITTED_TRANSACTIONS", "workflowID": "wf"}')
    assert load_trigger_file(as_json).event == "COMMITTED_TRANSACTIONS"
    as_list = tmp_path / "list.yaml"
    as_list.write_text("triggers:\n  - name: one\n    event: E\n    workflowID: wf\n")
    assert load_trigger_file(as_list).name == "one"


def test_refuses_several_triggers(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text("- {event: E, workflowID: a}\n- {event: E, workflowID: b}\n")
    with pytest.raises(ConfigError, match="holds 2 triggers"):
        load_trigger_file(path)


def test_names_the_file_and_the_expression_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("event: E\nworkflowID: wf\nfilter: 'payload.amount >'\n")
    with pytest.raises(ConfigError) as caught:
        load_trigger_file(path)
    assert str(caught.value).startswith(f"{path}: filter 'payload.amount >'")


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_trigger_file(tmp_path / "absent.yaml")
