"""The live pipeline's rate with and without a backtest running beside it in the same process.

One run starts Tansu and the stub orchestration API, publishes a history topic (events that
all match the backtested trigger: decode, match and render for every record, the most a
backtest does per record) and two live topics of events that match no trigger (the live
path's fastest and so most sensitive rate). Then it runs `trigger-daemon run` twice, as
bench/throughput.py does, each on its own live topic and consumer group:

1. alone     the live rate: events/s until the group's committed offsets reach the end;
2. beside    the same, with a backtest over the history topic started through the API as the
             daemon starts; also the backtest's own rate over the same time.

    .venv/bin/python bench/backtest_beside_live.py                  # about a minute
    .venv/bin/python bench/backtest_beside_live.py --live 400000 --history 600000

Each measurement stops after --max-seconds (marked `partial`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import beside_live  # what both beside-live benchmarks share, beside this file
import throughput as bench  # the helpers of bench/throughput.py, beside this file
from beside_live import TRIGGER, Setting


async def measure(
    setting: Setting,
    stub_url: str,
    name: str,
    live_records: int,
    history_topic: str | None,
    max_seconds: float,
) -> tuple[bench.Rate, str]:
    topic = await setting.topic(f"live-{name}")
    goal = await setting.publish(topic, live_records, beside_live.UNMATCHED)
    daemon = setting.daemon(name, topic, stub_url, [TRIGGER])
    async with (
        bench.running(daemon, None),
        setting.commits(daemon, topic) as watcher,
        httpx.AsyncClient(base_url=daemon.api_url) as client,
    ):
        backtest_id = None
        if history_topic is not None:
            backtest = {
                "trigger": {k: v for k, v in TRIGGER.items() if k != "name"},
                "since": "1d",
                "topics": [history_topic],
            }
            backtest_id = await beside_live.start(client, daemon, "backtest", backtest)
        started = time.monotonic()
        rate = await bench.measure_progress(watcher.total, goal, max_seconds, daemon)
        if backtest_id is None:
            return rate, ""
        body = (await client.get(f"/v2/backtests/{backtest_id}")).json()["data"]
        seconds = time.monotonic() - started
        read = body["progress"]["read"]
        return rate, (
            f"backtest {body['status']}: {read:,} of {body['progress']['total']:,} records "
            f"read ({read / seconds:,.0f}/s over the live run's {seconds:.1f} s, "
            f"{body['matched']:,} matched)"
        )


async def main(args: argparse.Namespace) -> None:
    with beside_live.setting() as setting:
        history = await setting.topic("history")
        print(f"publishing {args.history:,} history and 2 x {args.live:,} live records ...")
        await setting.publish(history, args.history, bench.TARGET_DESTINATION)
        async with bench.StubProcess() as stub:
            alone, _ = await measure(setting, stub.url, "alone", args.live, None, args.max_seconds)
            beside, backtest = await measure(
                setting, stub.url, "beside", args.live, history, args.max_seconds
            )
        beside_live.report("backtest", alone, beside, backtest)


if __name__ == "__main__":
    parser = beside_live.arguments(
        __doc__.splitlines()[0], history=400_000, history_help="records in the history"
    )
    beside_live.add_max_seconds(parser)
    asyncio.run(main(parser.parse_args()))
