"""Hot reload of the YAML triggers: on SIGHUP, and when a watched file changes.

Watched: the config file (its `triggers:` section, and `triggers_files` itself) and every file
the `triggers_files` globs match now. The globs are matched again on every poll, so a created,
deleted or replaced file counts. Changes are found by polling content hashes, about once a
second (`triggers_poll_interval_seconds`), rather than with inotify: a Kubernetes ConfigMap
mount replaces its files by swapping a `..data` symlink, which a watch on the file misses, and
hashing a few small YAML files costs nothing measurable.

A reload reads and validates with the functions the start and `trigger-daemon validate` use
(config.load_config, triggers.files.load_yaml_triggers), so its messages are theirs. Any problem
rejects the whole reload and the previous triggers stay active. A reload that changes nothing
does not touch the store. The catalog is seen through the one method it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Literal, Protocol

import structlog

from trigger_daemon.config import LoadedConfig, Settings, load_config
from trigger_daemon.core.triggers import TriggerDefinition
from trigger_daemon.errors import ConfigError, StoreError
from trigger_daemon.ports import ReconcileResult
from trigger_daemon.triggers.files import load_yaml_triggers, triggers_file_matches

log = structlog.get_logger(__name__)

Cause = Literal["signal", "file"]
# Each watched path with the SHA-256 of its content; None when it cannot be read.
Fingerprint = tuple[tuple[str, str | None], ...]

# Settings a reload applies; a change to any other one needs a restart.
_RELOADABLE = frozenset({"triggers", "triggers_files"})
# A file seen changing is read again after this long until two reads agree (at most
# _SETTLE_ROUNDS times), so a file caught half-written is not applied.
_SETTLE_SECONDS = 0.1
_SETTLE_ROUNDS = 10


class YamlTriggerCatalog(Protocol):
    async def reconcile_yaml(self, definitions: Sequence[TriggerDefinition]) -> ReconcileResult: ...


def watched_paths(config: LoadedConfig) -> list[Path]:
    """The config file (when there is one) and every file its `triggers_files` match now."""
    paths = [] if config.path is None else [config.path]
    for _, matches in triggers_file_matches(config):
        paths.extend(matches)
    return paths


def fingerprint(paths: Iterable[Path]) -> Fingerprint:
    """What the files hold now. Content rather than mtime and size: it also sees a same-size
    edit within the filesystem's timestamp granularity and a copy that keeps the mtime."""
    return tuple((str(path), _digest(path)) for path in paths)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:  # gone between the glob and the read, unreadable, a directory
        return None


def settings_needing_restart(started: Settings, now: Settings) -> list[str]:
    """Top-level settings that differ from those the daemon started with, other than the
    triggers: a reload does not apply them."""
    return [
        name
        for name in Settings.model_fields
        if name not in _RELOADABLE and getattr(started, name) != getattr(now, name)
    ]


class TriggerReloader:
    """Re-reads, validates and applies the YAML triggers when asked (`request`, the SIGHUP
    handler) or when a watched file changed."""

    def __init__(
        self,
        config: LoadedConfig,
        catalog: YamlTriggerCatalog,
        applied: Sequence[TriggerDefinition],
        *,
        requested: asyncio.Event | None = None,
        read_at_start: Fingerprint | None = None,
    ) -> None:
        """`read_at_start`: the fingerprint taken just before `applied` was read, so an edit
        made during the start is caught and nothing else is read again; without it, the first
        poll reads everything once."""
        self._config = config  # the latest readable config: its globs say what to watch
        self._started = config.settings
        self._catalog = catalog
        self._applied = _by_name(applied)
        self._interval = config.settings.triggers_poll_interval_seconds
        self._requested = requested or asyncio.Event()
        self._fingerprint = read_at_start
        self._rejected = False  # the last read was refused: say so when one reads cleanly again

    def request(self) -> None:
        """Ask for a reload now; it runs in `watch`."""
        self._requested.set()

    async def watch(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: reload at once when requested, and within about one poll
        interval of a file change."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await _wait_for_either(stop, self._requested)
            if stop.is_set():
                return
            if self._requested.is_set():
                self._requested.clear()
                await self.reload("signal")
            elif await asyncio.to_thread(self._current_fingerprint) != self._fingerprint:
                await self.reload("file")

    async def reload(self, cause: Cause) -> ReconcileResult | None:
        """Apply the YAML triggers as the files say now; None when nothing was applied."""
        # Taken before reading, so a change made while reading is seen at the next poll.
        self._fingerprint = await self._settled_fingerprint()
        try:
            # In a thread: reading and compiling thousands of triggers takes seconds, and the
            # event loop must go on consuming (and heartbeating) meanwhile.
            config, definitions = await asyncio.to_thread(self._read)
            self._config = config
        except ConfigError as exc:
            self._rejected = True
            log.error(
                "triggers.reload_rejected",
                cause=cause,
                problems=str(exc).splitlines(),
                detail="nothing from this reload was applied; the previous triggers stay active",
            )
            return None
        if self._rejected:
            self._rejected = False
            log.info("triggers.reload_valid_again", cause=cause, yaml_triggers=len(definitions))
        self._warn_about_restart(config)
        return await self._apply(definitions, cause)

    async def _apply(
        self, definitions: Sequence[TriggerDefinition], cause: Cause
    ) -> ReconcileResult | None:
        wanted = _by_name(definitions)
        if wanted == self._applied:
            # An operator who sent SIGHUP wants an answer; a comment edited in a file does not.
            unchanged = log.info if cause == "signal" else log.debug
            unchanged("triggers.reload_unchanged", cause=cause, yaml_triggers=len(wanted))
            return None
        try:
            result = await self._catalog.reconcile_yaml(definitions)
        except StoreError as exc:
            self._fingerprint = None  # so the next poll tries again
            log.warning(
                "triggers.reload_failed", cause=cause, error=str(exc), retriable=exc.retriable
            )
            return None
        self._applied = wanted
        log.info("triggers.reloaded", cause=cause, **asdict(result))
        return result

    def _read(self) -> tuple[LoadedConfig, list[TriggerDefinition]]:
        config = self._reread_config()
        return config, load_yaml_triggers(config)

    def _reread_config(self) -> LoadedConfig:
        # Without a file the settings came from code or the environment, which cannot change
        # under a running process: only the trigger files are read again.
        if self._config.path is None:
            return self._config
        return load_config(self._config.path)

    def _warn_about_restart(self, config: LoadedConfig) -> None:
        changed = settings_needing_restart(self._started, config.settings)
        if changed:
            log.warning(
                "config.restart_required",
                settings=changed,
                detail="a reload applies only the triggers; restart to apply these",
            )

    def _current_fingerprint(self) -> Fingerprint:
        # Run in a thread: matching the globs and hashing the files is file I/O.
        return fingerprint(watched_paths(self._config))

    async def _settled_fingerprint(self) -> Fingerprint:
        # An editor or `cp` truncates a file before writing it: read half-written, a triggers
        # file could look empty, and applying it would remove every trigger it holds.
        current = await asyncio.to_thread(self._current_fingerprint)
        for _ in range(_SETTLE_ROUNDS):
            await asyncio.sleep(_SETTLE_SECONDS)
            again = await asyncio.to_thread(self._current_fingerprint)
            if again == current:
                break
            current = again
        return current


def _by_name(definitions: Iterable[TriggerDefinition]) -> dict[str | None, TriggerDefinition]:
    # YAML names are unique (validated), and the order of triggers in a file does not matter.
    return {definition.name: definition for definition in definitions}


async def _wait_for_either(first: asyncio.Event, second: asyncio.Event) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in (first, second)]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
