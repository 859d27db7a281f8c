"""SQLite write transactions run whole in one thread, one hop from the event loop.

Through aiosqlite every statement of a transaction is several round trips between the event
loop and the driver's thread (cursor, execute, fetch, close, then the commit), and each one
waits its turn in the loop. Under load those waits take many times longer than the SQLite
work of a group commit, and as the writes of one SQLite database run one after another, the
store would bound the daemon. Here the transaction runs on a synchronous engine in
a dedicated thread: the loop hands it over once and is told once when it has committed.

Used for SQLite files only: an in-memory database exists in its one connection, and
PostgreSQL's driver is asynchronous already.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine

Result = TypeVar("Result")


class ThreadWriter:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")

    async def run(self, body: Callable[[Connection], Result]) -> Result:
        """`body(connection)` in one write transaction (BEGIN IMMEDIATE ... COMMIT), in the
        writer thread; its result, or its exception after a rollback. A caller cancelled
        meanwhile does not stop the transaction: it commits, or fails, as if awaited."""
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, self._transaction, body
        )

    def _transaction(self, body: Callable[[Connection], Result]) -> Result:
        with self._engine.begin() as connection:
            return body(connection)

    async def close(self) -> None:
        """Wait for the transaction under way, then close the connection (in its thread)."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._engine.dispose)
        self._thread.shutdown(wait=True)
