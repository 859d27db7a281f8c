"""Re-drive: run `failed` occurrences again, with the same idempotency key.

Used by `POST /v2/triggers/{id}/occurrences/{occurrenceID}/retry` and by the
`trigger-daemon retry-failed` command. The occurrence's stored event is evaluated again with
the trigger as it is now, and the outcome overwrites the failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from trigger_daemon.core.events import Unprocessable, envelope_from_object
from trigger_daemon.core.expressions import document_for
from trigger_daemon.core.occurrences import Occurrence, OccurrenceStatus
from trigger_daemon.core.triggers import compile_trigger
from trigger_daemon.engine.runner import OccurrenceRunner
from trigger_daemon.errors import ConflictError, NotFoundError
from trigger_daemon.ports import Store
from trigger_daemon.triggers.catalog import TriggerCatalog

_PAGE = 500


class Redrive:
    def __init__(self, catalog: TriggerCatalog, store: Store, runner: OccurrenceRunner) -> None:
        self._catalog = catalog
        self._store = store
        self._runner = runner

    async def retry(self, trigger_id: str, occurrence_id: str) -> Occurrence:
        occurrence = await self._store.get_occurrence(occurrence_id)
        if occurrence.trigger_id != trigger_id:
            raise NotFoundError(f"occurrence {occurrence_id} not found for trigger {trigger_id}")
        return await self._run(occurrence)

    async def _run(self, failed: Occurrence) -> Occurrence:
        # The trigger first: reopened, an occurrence whose trigger is gone would stay pending.
        compiled = self._catalog.compiled(failed.trigger_id) or compile_trigger(
            await self._store.get_trigger(failed.trigger_id)
        )
        occurrence = await self._store.reopen_occurrence(failed.id)
        envelope = envelope_from_object(occurrence.event)
        if isinstance(envelope, Unprocessable):  # stored events were valid when recorded
            raise ConflictError(f"occurrence {occurrence.id}: {envelope.detail}")
        return await self._runner.run(
            compiled,
            occurrence,
            document_for(envelope),
            log_context={"redrive": True},
        )

    async def failed_occurrences(
        self, trigger_id: str, since: datetime | None = None
    ) -> AsyncIterator[Occurrence]:
        """The trigger's failed occurrences, newest first, back to `since`."""
        await self._store.get_trigger(trigger_id)  # NotFoundError for an unknown trigger
        before: int | None = None
        while True:
            page = await self._store.list_occurrences(trigger_id, limit=_PAGE, before_seq=before)
            for occurrence in page:
                if since is not None and occurrence.date < since:
                    return
                if occurrence.status is OccurrenceStatus.FAILED:
                    yield occurrence
            if len(page) < _PAGE:
                return
            before = page[-1].seq

    async def retry_all(
        self, trigger_id: str, since: datetime | None = None
    ) -> AsyncIterator[Occurrence]:
        """Retry each failed occurrence in turn; yields each one as it ends now."""
        failed = [occurrence async for occurrence in self.failed_occurrences(trigger_id, since)]
        for occurrence in reversed(failed):  # oldest first, as they originally happened
            yield await self._run(occurrence)
