"""The set of active triggers: stored ones compiled into an index the pipeline reads.

Every change (API create/delete, YAML reconcile) goes through the store first and then
rebuilds the index, so what the pipeline matches is always what the store holds. Changes
made through another replica are picked up by `watch`, which polls the store's triggers
revision (one primary-key read) and rebuilds when it moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import structlog

from trigger_daemon import heap
from trigger_daemon.core.advice import trigger_warnings
from trigger_daemon.core.matching import TriggerIndex
from trigger_daemon.core.triggers import (
    CompiledTrigger,
    Trigger,
    TriggerDefinition,
    TriggerSource,
    compile_trigger,
    yaml_trigger_id,
)
from trigger_daemon.errors import ConflictError, NotFoundError, StoreError
from trigger_daemon.observability import metrics
from trigger_daemon.ports import ReconcileResult, Store

log = structlog.get_logger(__name__)


class TriggerCatalog:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._index = TriggerIndex(())
        self._compiled: dict[str, CompiledTrigger] = {}
        self._revision: int | None = None  # the store's revision the index was built from
        self._lock = asyncio.Lock()

    @property
    def index(self) -> TriggerIndex:
        return self._index

    def compiled(self, trigger_id: str) -> CompiledTrigger | None:
        return self._compiled.get(trigger_id)

    def find(self, id_or_name: str) -> str:
        """The id of the trigger with this id, or else with exactly this name."""
        if id_or_name in self._compiled:
            return id_or_name
        named = [c.trigger.id for c in self._compiled.values() if c.trigger.name == id_or_name]
        if len(named) == 1:
            return named[0]
        raise NotFoundError(
            f"no trigger has the id or name {id_or_name!r}"
            if not named
            else f"{len(named)} triggers are named {id_or_name!r}: give the id"
        )

    async def refresh(self) -> None:
        """Rebuild the index from the store. Compilation reuses unchanged triggers."""
        async with self._lock:
            # Read before the list: a change committed in between is seen again next poll.
            revision = await self._store.triggers_revision()
            triggers = await self._store.list_triggers()
            # Compiling and indexing thousands of triggers takes a while: in a thread, so
            # the event loop (the API, heartbeats, the pipeline) keeps its turns meanwhile.
            self._compiled, self._index = await asyncio.to_thread(self._build, triggers)
            self._revision = revision

    def _build(
        self, triggers: Sequence[Trigger]
    ) -> tuple[dict[str, CompiledTrigger], TriggerIndex]:
        # The catalogue lives until the next change: built and kept out of collections.
        with heap.long_lived_build():
            compiled = {trigger.id: self._reuse_or_compile(trigger) for trigger in triggers}
            return compiled, TriggerIndex(compiled.values())

    async def refresh_if_changed(self) -> bool:
        """Rebuild the index when the store's triggers changed since the last build."""
        if await self._store.triggers_revision() == self._revision:
            return False
        await self.refresh()
        return True

    async def watch(self, interval_seconds: float, stop: asyncio.Event) -> None:
        """Until `stop` is set, pick up trigger changes made by other replicas within about
        `interval_seconds`. A store outage keeps the current index and is retried."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_seconds)
            if stop.is_set():
                return
            try:
                if await self.refresh_if_changed():
                    log.info("triggers.refreshed", active=len(self._index))
            except StoreError as exc:
                log.warning("triggers.refresh_failed", error=str(exc), retriable=exc.retriable)

    def _reuse_or_compile(self, trigger: Trigger) -> CompiledTrigger:
        previous = self._compiled.get(trigger.id)
        if previous is not None and previous.trigger == trigger:
            return previous
        compiled = compile_trigger(trigger)
        expressions = [compiled.filter, *compiled.vars.values()]
        interpreted = [e.source for e in expressions if e is not None and not e.compiled]
        if interpreted:  # the compiler could not take them: evaluated, more slowly, interpreted
            metrics.INTERPRETED_EXPRESSIONS.inc(len(interpreted))
            log.warning("trigger.interpreted", trigger_id=trigger.id, expressions=interpreted)
        return compiled

    @staticmethod
    def compile_definition(definition: TriggerDefinition) -> CompiledTrigger:
        """Compile a definition that is not stored (for `test-trigger`)."""
        return compile_trigger(
            Trigger(**definition.model_dump(), id="", created_at=datetime.now(UTC))
        )

    async def create(self, definition: TriggerDefinition) -> Trigger:
        """Store an API trigger (already validated) and activate it."""
        trigger = Trigger(
            **definition.model_dump(),
            id=str(uuid.uuid4()),
            created_at=datetime.now(UTC),
            source=TriggerSource.API,
        )
        await self._store.create_trigger(trigger)
        await self.refresh()
        compiled = self._compiled.get(trigger.id)
        for warning in trigger_warnings(compiled) if compiled is not None else ():
            log.warning("trigger.advice", trigger_id=trigger.id, name=trigger.name, advice=warning)
        return trigger

    async def delete(self, trigger_id: str) -> None:
        trigger = await self._store.get_trigger(trigger_id)
        if trigger.source is TriggerSource.YAML:
            raise ConflictError(
                f"trigger {trigger_id} ({trigger.name}) is managed by the configuration file; "
                "remove it from the YAML triggers instead"
            )
        await self._store.delete_trigger(trigger_id)
        await self.refresh()

    async def reconcile_yaml(self, definitions: Sequence[TriggerDefinition]) -> ReconcileResult:
        """Make the stored YAML triggers equal to `definitions` (each has a unique name)."""
        now = datetime.now(UTC)
        triggers = [
            Trigger(
                **definition.model_dump(),
                id=yaml_trigger_id(definition.name or ""),
                created_at=now,
                source=TriggerSource.YAML,
            )
            for definition in definitions
        ]
        result = await self._store.replace_yaml_triggers(triggers)
        await self.refresh()
        return result
