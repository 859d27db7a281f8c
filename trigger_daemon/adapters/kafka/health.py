"""Whether the broker answers: a probe every few seconds, so readiness turns false within
seconds of losing Kafka, and one line when it is lost, a reminder while it stays lost, and one
when it is back, in place of the client library's stream of connection errors."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)


class BrokerWatch:
    def __init__(
        self,
        probe: Callable[[], Awaitable[object]],
        servers: str,
        *,
        interval_seconds: float = 2.0,
        timeout_seconds: float = 3.0,
        remind_every_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._servers = servers
        self._interval = interval_seconds
        self._timeout = timeout_seconds
        self._remind_every = remind_every_seconds
        self._clock = clock
        self.problem: str | None = None  # why the broker is unreachable; None while it answers
        self._lost_at = 0.0
        self._reminded_at = 0.0

    async def watch(self, stop: asyncio.Event) -> None:
        """Probe until `stop` is set."""
        while not stop.is_set():
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)

    async def check(self) -> None:
        try:
            await asyncio.wait_for(self._probe(), self._timeout)
        except Exception as exc:  # any failure to answer is the broker's unavailability
            self._failed(_describe(exc, self._timeout))
        else:
            self._answered()

    def _failed(self, why: str) -> None:
        now = self._clock()
        if self.problem is None:
            self._lost_at = self._reminded_at = now
            self.problem = f"cannot reach Kafka at {self._servers}: {why}"
            log.warning(
                "kafka.unreachable",
                error=self.problem,
                detail="records wait; the client's own connection errors are not repeated",
            )
        elif now - self._reminded_at >= self._remind_every:
            self._reminded_at = now
            log.warning(
                "kafka.unreachable", error=self.problem, for_seconds=round(now - self._lost_at)
            )

    def _answered(self) -> None:
        if self.problem is not None:
            log.info("kafka.recovered", after_seconds=round(self._clock() - self._lost_at, 1))
            self.problem = None


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
