"""What the reloader watches and how it tells that a file changed: content, not timestamps,
through the symlink swap a Kubernetes ConfigMap mount does."""

from __future__ import annotations

import os
from pathlib import Path

from trigger_daemon.config import load_config
from trigger_daemon.triggers.reload import (
    Fingerprint,
    fingerprint,
    settings_needing_restart,
    watched_paths,
)

TRIGGER = "- {name: a, event: E, workflowID: w}\n"


def config_with_glob(tmp_path: Path, pattern: str = "triggers/*.yaml") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"triggers_files: [{pattern!r}]\n")
    return path


def now(config_path: Path) -> Fingerprint:
    return fingerprint(watched_paths(load_config(config_path)))


def test_watched_paths_are_the_config_file_and_what_the_globs_match(tmp_path: Path) -> None:
    config_path = config_with_glob(tmp_path)
    (tmp_path / "triggers").mkdir()
    for name in ("b.yaml", "a.yaml", "notes.txt", ".hidden.yaml"):
        (tmp_path / "triggers" / name).write_text(TRIGGER)
    paths = watched_paths(load_config(config_path))
    assert paths == [config_path, tmp_path / "triggers/a.yaml", tmp_path / "triggers/b.yaml"]


def test_rewriting_the_same_content_is_no_change(tmp_path: Path) -> None:
    config_path = config_with_glob(tmp_path, "t.yaml")
    (tmp_path / "t.yaml").write_text(TRIGGER)
    before = now(config_path)
    (tmp_path / "t.yaml").write_text(TRIGGER)
    assert now(config_path) == before


def test_a_same_size_edit_with_the_same_mtime_is_a_change(tmp_path: Path) -> None:
    config_path = config_with_glob(tmp_path, "t.yaml")
    file = tmp_path / "t.yaml"
    file.write_text(TRIGGER)
    stat = file.stat()
    before = now(config_path)
    file.write_text(TRIGGER.replace("w}", "x}"))
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert file.stat().st_size == stat.st_size
    assert now(config_path) != before


def test_a_created_or_deleted_file_matching_the_glob_is_a_change(tmp_path: Path) -> None:
    config_path = config_with_glob(tmp_path)
    (tmp_path / "triggers").mkdir()
    (tmp_path / "triggers/a.yaml").write_text(TRIGGER)
    before = now(config_path)
    (tmp_path / "triggers/b.yaml").write_text(TRIGGER.replace("a,", "b,"))
    with_b = now(config_path)
    assert with_b != before
    (tmp_path / "triggers/b.yaml").unlink()
    assert now(config_path) == before


def test_an_edit_of_the_config_file_itself_is_a_change(tmp_path: Path) -> None:
    config_path = tmp_path / "config.yaml"
    config_path.write_text(f"triggers:\n  {TRIGGER}")
    before = now(config_path)
    config_path.write_text(f"triggers:\n  {TRIGGER.replace('w}', 'x}')}")
    assert now(config_path) != before


def test_a_configmap_symlink_swap_is_a_change(tmp_path: Path) -> None:
    # How the kubelet updates a mounted ConfigMap: each file is a symlink through `..data`,
    # and `..data` is replaced atomically to point at a new timestamped directory.
    mount = tmp_path / "triggers"
    mount.mkdir()
    for version, workflow in (("..2024_01", "w"), ("..2024_02", "x")):
        (mount / version).mkdir()
        (mount / version / "t.yaml").write_text(TRIGGER.replace("w}", f"{workflow}}}"))
    (mount / "..data").symlink_to("..2024_01")
    (mount / "t.yaml").symlink_to("..data/t.yaml")
    config_path = config_with_glob(tmp_path)
    before = now(config_path)

    (mount / "..data_tmp").symlink_to("..2024_02")
    os.replace(mount / "..data_tmp", mount / "..data")

    after = now(config_path)
    assert after != before
    assert [path for path, _ in after] == [str(config_path), str(mount / "t.yaml")]


def test_an_unreadable_path_has_no_digest(tmp_path: Path) -> None:
    assert fingerprint([tmp_path / "missing.yaml", tmp_path]) == (
        (str(tmp_path / "missing.yaml"), None),
        (str(tmp_path), None),
    )


def test_only_settings_other_than_the_triggers_need_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"kafka: {{topics: [ledger]}}\ntriggers:\n  {TRIGGER}")
    started = load_config(path).settings
    path.write_text("kafka: {topics: [ledger]}\ntriggers_files: ['*.yaml']\n")
    assert settings_needing_restart(started, load_config(path).settings) == []
    path.write_text("kafka: {topics: [payments]}\ntriggers_poll_interval_seconds: 5\n")
    assert settings_needing_restart(started, load_config(path).settings) == [
        "kafka",
        "triggers_poll_interval_seconds",
    ]
