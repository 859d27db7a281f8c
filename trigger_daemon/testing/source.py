"""ListSource: `ports.Source` handing out records from a list, recording what is committed.

It is joined from the start and assigned the partitions of its records (plus any named).
`fetch` hands out the unread records in order, `batch_size` at a time (all by default), and
nothing while paused; with nothing to hand out it waits a moment, as a real fetch waits for
records, so the caller's other tasks run. `revoke` moves partitions away as a rebalance would:
the pipeline's revocation handler runs first, then their unread records are left to the next
owner.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from trigger_daemon.ports import Source, SourceRecord

Partition = tuple[str, int]
RevocationHandler = Callable[[set[Partition]], Awaitable[None]]

_IDLE_FETCH_SECONDS = 0.001


class ListSource:
    def __init__(
        self,
        records: Iterable[SourceRecord] = (),
        *,
        partitions: Iterable[Partition] = (),
        batch_size: int | None = None,
        on_commit: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`on_commit` runs inside each commit, after it is recorded: a commit "on the wire"."""
        self._unread: deque[SourceRecord] = deque()
        self._assigned: set[Partition] = set(partitions)
        self._batch_size = batch_size
        self._on_commit = on_commit
        self._on_revoked: RevocationHandler | None = None
        self.commits: list[dict[Partition, int]] = []
        self.paused = False
        self.fetches_while_paused = 0
        self.add(*records)

    def add(self, *records: SourceRecord) -> None:
        """More records to hand out (a record added again is a redelivery)."""
        self._unread.extend(records)
        self._assigned.update((record.topic, record.partition) for record in records)

    @property
    def committed(self) -> dict[Partition, int]:
        """The last offset committed per partition."""
        latest: dict[Partition, int] = {}
        for commit in self.commits:
            latest.update(commit)
        return latest

    async def fetch(self, timeout_seconds: float) -> Mapping[Partition, Sequence[SourceRecord]]:
        if self.paused:
            self.fetches_while_paused += 1
        elif self._unread:
            count = len(self._unread) if self._batch_size is None else self._batch_size
            batch: dict[Partition, list[SourceRecord]] = {}
            for _ in range(min(count, len(self._unread))):
                record = self._unread.popleft()
                batch.setdefault((record.topic, record.partition), []).append(record)
            return batch
        await asyncio.sleep(min(timeout_seconds, _IDLE_FETCH_SECONDS))
        return {}

    async def commit(self, offsets: Mapping[Partition, int]) -> None:
        self.commits.append(dict(offsets))
        if self._on_commit is not None:
            await self._on_commit()

    def set_revocation_handler(self, handler: RevocationHandler) -> None:
        self._on_revoked = handler

    async def revoke(self, partitions: set[Partition]) -> None:
        if self._on_revoked is not None:
            await self._on_revoked(partitions)
        self._assigned -= partitions
        self._unread = deque(r for r in self._unread if (r.topic, r.partition) not in partitions)

    def assigned(self) -> set[Partition]:
        return set(self._assigned)

    def joined(self) -> bool:
        return True

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    async def caught_up(self) -> bool:
        return bool(self._assigned) and not self._unread


if TYPE_CHECKING:

    def _implements_the_source_port(source: ListSource) -> Source:
        """mypy checks here that ListSource has every method of ports.Source."""
        return source
