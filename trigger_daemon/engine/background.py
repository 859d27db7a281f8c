"""Background work that shares the event loop with the live pipeline without slowing it much.

A backtest (and any long scan) works in slices and calls `BackgroundShare.pause()` between
them. The pause always yields the loop once; if other tasks had work waiting (the yield took
a while to come back), it also sleeps long enough that this work keeps at most `share` of the
loop while they are busy. When the daemon is otherwise idle the yield comes back at once and
the work runs at full speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

DEFAULT_SHARE = 0.25
# A yield that takes longer than this to come back means other tasks ran meanwhile.
_CONTENDED_SECONDS = 0.0005


class BackgroundShare:
    def __init__(
        self, share: float = DEFAULT_SHARE, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self._rest_per_work = (1 - share) / share
        self._clock = clock
        self._slice_started = clock()

    async def pause(self) -> None:
        """Between two slices of work: yield, and rest when others are busy."""
        worked = self._clock() - self._slice_started
        yielded_at = self._clock()
        await asyncio.sleep(0)
        if self._clock() - yielded_at > _CONTENDED_SECONDS:
            await asyncio.sleep(worked * self._rest_per_work)
        self._slice_started = self._clock()
