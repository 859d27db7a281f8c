"""The reloader against real files and a fake catalog: what it applies, what it refuses, and
that a reload which changes nothing never reaches the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import structlog

from trigger_daemon.config import load_config
from trigger_daemon.core.triggers import TriggerDefinition
from trigger_daemon.errors import ConfigError, StoreError
from trigger_daemon.ports import ReconcileResult
from trigger_daemon.triggers.files import load_yaml_triggers
from trigger_daemon.triggers.reload import TriggerReloader, fingerprint, watched_paths

A = "- {name: a, event: E, workflowID: wa}\n"
B = "- {name: b, event: E, workflowID: wb}\n"
BROKEN = "- {name: c, event: E, workflowID: wc, filter: 'status == \"DONE\"'}\n"


class FakeCatalog:
    """Records every reconcile (a store write); fails the first `failures` of them."""

    def __init__(self, failures: int = 0) -> None:
        self.reconciled: list[list[str | None]] = []
        self.applied = asyncio.Event()
        self._failures = failures

    async def reconcile_yaml(self, definitions: Sequence[TriggerDefinition]) -> ReconcileResult:
        if self._failures:
            self._failures -= 1
            raise StoreError("database is locked", retriable=True)
        self.reconciled.append([definition.name for definition in definitions])
        self.applied.set()
        return ReconcileResult(added=1, unchanged=len(definitions) - 1)


def write_config(tmp_path: Path, triggers_file: str, **settings: object) -> Path:
    (tmp_path / "triggers.yaml").write_text(triggers_file)
    path = tmp_path / "config.yaml"
    lines = ["triggers_files: [triggers.yaml]", *(f"{k}: {v}" for k, v in settings.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def reloader_for(path: Path, catalog: FakeCatalog) -> TriggerReloader:
    config = load_config(path)
    return TriggerReloader(config, catalog, load_yaml_triggers(config))


@asynccontextmanager
async def watching(reloader: TriggerReloader) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(reloader.watch(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_a_reload_that_changes_nothing_does_not_write_to_the_store(tmp_path: Path) -> None:
    catalog = FakeCatalog()
    path = write_config(tmp_path, A)
    reloader = reloader_for(path, catalog)
    (tmp_path / "triggers.yaml").write_text(f"# reordered, with a comment\n{A}")
    with structlog.testing.capture_logs() as logs:
        assert await reloader.reload("signal") is None
    assert catalog.reconciled == []
    assert [log["event"] for log in logs] == ["triggers.reload_unchanged"]


async def test_an_edit_is_applied_and_logged_with_its_counts(tmp_path: Path) -> None:
    catalog = FakeCatalog()
    path = write_config(tmp_path, A)
    reloader = reloader_for(path, catalog)
    (tmp_path / "triggers.yaml").write_text(A + B)
    with structlog.testing.capture_logs() as logs:
        await reloader.reload("file")
    assert catalog.reconciled == [["a", "b"]]
    assert logs == [
        {
            "event": "triggers.reloaded",
            "log_level": "info",
            "cause": "file",
            "added": 1,
            "changed": 0,
            "removed": 0,
            "unchanged": 1,
        }
    ]
    assert await reloader.reload("file") is None  # applied once: the same files again are a no-op


async def test_a_broken_edit_applies_nothing_and_logs_what_validate_prints(
    tmp_path: Path,
) -> None:
    catalog = FakeCatalog()
    path = write_config(tmp_path, A)
    reloader = reloader_for(path, catalog)
    (tmp_path / "triggers.yaml").write_text(A + B + BROKEN)
    with structlog.testing.capture_logs() as logs:
        await reloader.reload("file")
    assert catalog.reconciled == []
    [rejected] = logs
    assert rejected["event"] == "triggers.reload_rejected"
    assert rejected["log_level"] == "error"
    with pytest.raises(ConfigError) as validate:  # what `trigger-daemon validate` reports
        load_yaml_triggers(load_config(path))
    assert rejected["problems"] == str(validate.value).splitlines()
    [problem] = rejected["problems"]  # the file, the trigger, the field and the reason
    assert problem.startswith(f"{tmp_path / 'triggers.yaml'}: triggers[2] (c): filter ")
    assert '"DONE" is a field name' in problem


async def test_watch_applies_an_edit_of_the_config_files_triggers_section(
    tmp_path: Path,
) -> None:
    catalog = FakeCatalog()
    path = tmp_path / "config.yaml"
    path.write_text(f"triggers_poll_interval_seconds: 0.05\ntriggers:\n  {A}")
    reloader = reloader_for(path, catalog)
    async with watching(reloader):
        path.write_text(f"triggers_poll_interval_seconds: 0.05\ntriggers:\n  {A}  {B}")
        await asyncio.wait_for(catalog.applied.wait(), 5)
    assert catalog.reconciled == [["a", "b"]]


async def test_a_request_reloads_at_once_whatever_the_poll_interval(tmp_path: Path) -> None:
    catalog = FakeCatalog()
    path = write_config(tmp_path, A, triggers_poll_interval_seconds=3600)
    reloader = reloader_for(path, catalog)
    async with watching(reloader):
        (tmp_path / "triggers.yaml").write_text(A + B)
        reloader.request()
        await asyncio.wait_for(catalog.applied.wait(), 5)
    assert catalog.reconciled == [["a", "b"]]


async def test_a_store_error_is_retried_at_the_next_poll(tmp_path: Path) -> None:
    catalog = FakeCatalog(failures=1)
    path = write_config(tmp_path, A, triggers_poll_interval_seconds=0.05)
    reloader = reloader_for(path, catalog)
    with structlog.testing.capture_logs() as logs:
        async with watching(reloader):
            (tmp_path / "triggers.yaml").write_text(A + B)
            await asyncio.wait_for(catalog.applied.wait(), 5)
    assert catalog.reconciled == [["a", "b"]]
    assert "triggers.reload_failed" in [log["event"] for log in logs]


async def test_a_fixed_file_is_applied_after_a_rejected_one(tmp_path: Path) -> None:
    catalog = FakeCatalog()
    path = write_config(tmp_path, A, triggers_poll_interval_seconds=0.05)
    reloader = reloader_for(path, catalog)
    (tmp_path / "triggers.yaml").write_text(A + BROKEN)
    assert await reloader.reload("file") is None
    async with watching(reloader):
        (tmp_path / "triggers.yaml").write_text(A + B)
        await asyncio.wait_for(catalog.applied.wait(), 5)
    assert catalog.reconciled == [["a", "b"]]


async def test_files_unchanged_since_the_start_are_not_read_again(tmp_path: Path) -> None:
    catalog = FakeCatalog()
    path = write_config(tmp_path, A, triggers_poll_interval_seconds=0.05)
    config = load_config(path)
    read_at_start = fingerprint(watched_paths(config))
    reloader = TriggerReloader(
        config, catalog, load_yaml_triggers(config), read_at_start=read_at_start
    )
    with structlog.testing.capture_logs() as logs:
        async with watching(reloader):
            await asyncio.sleep(0.3)  # several polls
    assert logs == []  # not even a reload_unchanged at debug: nothing was read


async def test_an_edit_made_during_the_start_is_applied_by_the_first_poll(tmp_path: Path) -> None:
    catalog = FakeCatalog()
    path = write_config(tmp_path, A, triggers_poll_interval_seconds=0.05)
    config = load_config(path)
    read_at_start = fingerprint(watched_paths(config))
    definitions = load_yaml_triggers(config)
    (tmp_path / "triggers.yaml").write_text(A + B)  # before the reloader runs
    reloader = TriggerReloader(config, catalog, definitions, read_at_start=read_at_start)
    async with watching(reloader):
        await asyncio.wait_for(catalog.applied.wait(), 5)
    assert catalog.reconciled == [["a", "b"]]


async def test_restoring_a_rejected_file_says_the_triggers_are_valid_again(
    tmp_path: Path,
) -> None:
    catalog = FakeCatalog()
    path = write_config(tmp_path, A)
    reloader = reloader_for(path, catalog)
    (tmp_path / "triggers.yaml").write_text(A + BROKEN)
    await reloader.reload("file")
    (tmp_path / "triggers.yaml").write_text(A)
    with structlog.testing.capture_logs() as logs:
        await reloader.reload("file")
    assert {
        "event": "triggers.reload_valid_again",
        "log_level": "info",
        "cause": "file",
        "yaml_triggers": 1,
    } in logs
