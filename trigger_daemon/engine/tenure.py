"""Whether this replica still holds a record's partition: asked before a record is begun, and
before a call that may have been overtaken (a retry, or a first try long after its occurrence
was begun).

A partition slips away under the work in hand in two ways:
- A rebalance revokes it. The pipeline marks it revoking until its records are settled; work
  for it then stops, and its record is left unfinished for the next owner, who reads it again.
- This process was paused (SIGSTOP, a frozen VM, a stalled loop) for longer than its group
  session. The group gave its partitions to others meanwhile, and it learns so only from its
  first heartbeat after it resumes; until that answer, its claims in the store still look
  current, as the new owner may not have reached the record yet. So after a pause that long,
  work waits for the heartbeat's answer (the revocation it brings) before going on.

A record given up here raises `PartitionLost`; the pipeline leaves it uncommitted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

Partition = tuple[str, int]

_TICK_SECONDS = 0.25
# How long after a pause work waits, beyond one heartbeat interval, for the heartbeat's answer.
_ANSWER_SECONDS = 1.0


class PartitionLost(Exception):
    """This replica no longer holds the record's partition: its next owner reads it again."""


class Tenure:
    def __init__(
        self,
        *,
        session_timeout_seconds: float | None = None,
        heartbeat_interval_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Without `session_timeout_seconds` pauses are not watched for: only revocations
        count (a backfill's reader, which belongs to no group)."""
        self.revoking: set[Partition] = set()
        self._clock = clock
        # A heartbeat is missed for the pause plus up to one interval; the session is lost
        # past `session_timeout`. Half of the margin leaves room for a slow heartbeat.
        self._pause_seconds = (
            None
            if session_timeout_seconds is None
            else (session_timeout_seconds - heartbeat_interval_seconds) / 2
        )
        self._settle_seconds = heartbeat_interval_seconds + _ANSWER_SECONDS
        self._last_tick: float | None = None  # None until `watch` runs
        self._settled_at = 0.0

    async def watch(self, stop: asyncio.Event) -> None:
        """Notice pauses of this process: a tick that comes late by a session's worth."""
        if self._pause_seconds is None:
            await stop.wait()
            return
        self._last_tick = self._clock()
        try:
            while not stop.is_set():
                await asyncio.sleep(_TICK_SECONDS)
                self._notice_pause()
        finally:
            self._last_tick = None

    def _notice_pause(self) -> None:
        """Called by the watch at each tick, and by `holds` in case a pause just ended and the
        watch has not run since."""
        if self._last_tick is None or self._pause_seconds is None:
            return
        now = self._clock()
        paused, self._last_tick = now - self._last_tick, now
        if paused > self._pause_seconds:
            self._settled_at = now + self._settle_seconds
            log.warning(
                "process.paused",
                seconds=round(paused, 1),
                detail="records wait for the consumer group's answer before going on",
                wait_seconds=self._settle_seconds,
            )

    async def holds(self, partition: Partition) -> bool:
        """False when `partition` is being revoked; after a pause, answered only once the
        group has had time to say whether this replica is still a member."""
        self._notice_pause()
        wait = self._settled_at - self._clock()
        if wait > 0:
            await asyncio.sleep(wait)
        return partition not in self.revoking

    async def ensure_held(self, partition: Partition) -> None:
        """Raise PartitionLost unless this replica holds `partition`."""
        if not await self.holds(partition):
            raise PartitionLost(f"partition {partition[0]}/{partition[1]} is being revoked")
