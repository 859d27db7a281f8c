"""`trigger-daemon` with one fault injected, for the supervision tests: once the file FLAG
exists, the poll of the store's triggers revision raises an error no code path expects.

    python faulty_daemon.py FLAG run --config FILE
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from trigger_daemon import cli
from trigger_daemon.triggers.catalog import TriggerCatalog

INJECTED = "injected fault: the revision poll met an error nobody expected"


def fail_revision_poll_once(flag: Path) -> None:
    original = TriggerCatalog.refresh_if_changed

    async def refresh_if_changed(self: TriggerCatalog) -> bool:
        if await asyncio.to_thread(flag.exists):
            raise RuntimeError(INJECTED)
        return await original(self)

    TriggerCatalog.refresh_if_changed = refresh_if_changed  # type: ignore[method-assign]


if __name__ == "__main__":
    fail_revision_poll_once(Path(sys.argv[1]))
    sys.exit(cli.main(sys.argv[2:]))
