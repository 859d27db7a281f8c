"""The live pipeline's rate with and without a backfill running in the same daemon.

One run starts Tansu and the stub orchestration API (a process, answering at once). Each
measurement has its own topic, daemon (`trigger-daemon run`, SQLite store) and group:

1. the topic gets --history events that match the trigger; the daemon, with no trigger yet,
   reads past them (nothing runs) and the trigger is created through its API;
2. the daemon stops, --live events that match no trigger (the live path's fastest and so
   most sensitive rate) are published after them, and the daemon starts again;
3. alone:  the live rate, events/s until the group's committed offsets reach the end;
   beside: the same, with a backfill of the trigger over the history started through the
   API as the daemon starts; also the backfill's own progress over the same time (each of
   its events is a real runWorkflow call and an occurrence written).

    .venv/bin/python bench/backfill_beside_live.py                  # about a minute
    .venv/bin/python bench/backfill_beside_live.py --live 400000 --history 50000
    .venv/bin/python bench/backfill_beside_live.py --backfill-in-flight 32

Each measurement stops after --max-seconds (marked `partial`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import beside_live  # what both beside-live benchmarks share, beside this file
import throughput as bench  # the helpers of bench/throughput.py, beside this file
from beside_live import TRIGGER, Setting


async def measure(
    setting: Setting, stub_url: str, name: str, args: argparse.Namespace, with_backfill: bool
) -> tuple[bench.Rate, str]:
    topic = await setting.topic(f"live-{name}")
    since = datetime.now(UTC) - timedelta(minutes=1)
    history = await setting.publish(topic, args.history, bench.TARGET_DESTINATION)
    await asyncio.sleep(0.01)
    until = datetime.now(UTC)
    daemon = setting.daemon(name, topic, stub_url, [])
    daemon._config["backfill"] = {"max_in_flight": args.backfill_in_flight}
    async with setting.commits(daemon, topic) as watcher:
        async with (
            bench.running(daemon, None),
            httpx.AsyncClient(base_url=daemon.api_url) as client,
        ):
            await bench.measure_progress(watcher.total, history, args.max_seconds, daemon)
            created = await client.post("/v2/triggers", json=TRIGGER)
            trigger_id = created.json()["data"]["id"]
        # the partitions' end offsets: history and live
        goal = await setting.publish(topic, args.live, beside_live.UNMATCHED)
        async with (
            bench.running(daemon, None),
            httpx.AsyncClient(base_url=daemon.api_url) as client,
        ):
            backfill_id = None
            if with_backfill:
                backfill = {
                    "triggerID": trigger_id,
                    "since": since.isoformat(),
                    "until": until.isoformat(),
                }
                backfill_id = await beside_live.start(client, daemon, "backfill", backfill)
            started = time.monotonic()
            rate = await bench.measure_progress(watcher.total, goal, args.max_seconds, daemon)
            if backfill_id is None:
                return rate, ""
            body = (await client.get(f"/v2/backfills/{backfill_id}")).json()["data"]
            seconds = time.monotonic() - started  # before the daemon's shutdown
    return rate, (
        f"backfill {body['status']}: {body['ran']:,} of {args.history:,} events run "
        f"({body['ran'] / seconds:,.0f}/s over the live run's {seconds:.1f} s; "
        f"{body['progress']['read']:,} records read)"
    )


async def main(args: argparse.Namespace) -> None:
    with beside_live.setting() as setting:
        print(f"each run: {args.history:,} history and {args.live:,} live records ...")
        async with bench.StubProcess() as stub:
            alone, _ = await measure(setting, stub.url, "alone", args, False)
            beside, backfill = await measure(setting, stub.url, "beside", args, True)
        beside_live.report("backfill", alone, beside, backfill)


if __name__ == "__main__":
    parser = beside_live.arguments(
        __doc__.splitlines()[0], history=20_000, history_help="events to backfill"
    )
    parser.add_argument(
        "--backfill-in-flight", type=int, default=256, help="backfill.max_in_flight"
    )
    beside_live.add_max_seconds(parser)
    asyncio.run(main(parser.parse_args()))
