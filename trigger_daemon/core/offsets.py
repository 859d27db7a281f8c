"""Which offset of a partition may be committed, when records finish out of order.

Records of one partition are started in offset order but may finish in any order (different
keys run concurrently). The commit point is one past the longest finished prefix: never past
a record that is still running, so a crash can only re-deliver, never skip.
"""

from __future__ import annotations

from collections import deque


class PartitionProgress:
    def __init__(self) -> None:
        self._started: deque[int] = deque()
        self._finished: set[int] = set()
        self._commit_point: int | None = None

    def start(self, offset: int) -> None:
        if self._started and offset <= self._started[-1]:
            raise ValueError(f"offset {offset} started out of order after {self._started[-1]}")
        self._started.append(offset)

    def finish(self, offset: int) -> None:
        self._finished.add(offset)
        while self._started and self._started[0] in self._finished:
            done = self._started.popleft()
            self._finished.discard(done)
            self._commit_point = done + 1

    def start_finished(self, offset: int) -> None:
        """A record that needed no work: started and finished at once, without the bookkeeping
        when nothing before it is still running (the common case: most events match nothing)."""
        if self._started:
            self.start(offset)
            self.finish(offset)
        else:
            self._commit_point = offset + 1

    @property
    def commit_point(self) -> int | None:
        """The next offset to read after a restart; None until the first record finishes."""
        return self._commit_point

    @property
    def in_flight(self) -> int:
        return len(self._started)
