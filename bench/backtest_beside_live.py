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
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import throughput as bench  # the helpers of bench/throughput.py, beside this file

from trigger_daemon.devtools.broker import TansuBroker

TRIGGER = bench.trigger("deposit-to-treasury", bench.TARGET_DESTINATION)


async def measure(
    workdir: Path,
    name: str,
    broker: TansuBroker,
    stub_url: str,
    live_records: int,
    history_topic: str | None,
    max_seconds: float,
) -> tuple[bench.Rate, str]:
    topic = f"live-{name}-{uuid.uuid4().hex[:8]}"
    await broker.create_topics([topic], partitions=bench.PARTITIONS)
    goal = sum(
        (
            await bench.produce(
                broker.bootstrap_servers, topic, live_records, bench.event_template("users:1")
            )
        ).values()
    )
    daemon = bench.DaemonProcess(
        workdir,
        name,
        bootstrap=broker.bootstrap_servers,
        topic=topic,
        stub_url=stub_url,
        triggers=[TRIGGER],
    )
    api = f"http://127.0.0.1:{daemon._config['api']['port']}"
    async with (
        bench.running(daemon, None),
        bench.CommitWatcher(broker.bootstrap_servers, daemon.group_id, topic) as watcher,
        httpx.AsyncClient(base_url=api) as client,
    ):
        backtest_id = None
        if history_topic is not None:
            backtest_id = await start_backtest(client, daemon, history_topic)
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


async def start_backtest(client: httpx.AsyncClient, daemon: bench.DaemonProcess, topic: str) -> str:
    deadline = time.monotonic() + bench.START_TIMEOUT_SECONDS
    while True:
        daemon.check_alive()
        try:
            answer = await client.post(
                "/v2/backtests",
                json={
                    "trigger": {k: v for k, v in TRIGGER.items() if k != "name"},
                    "since": "1d",
                    "topics": [topic],
                },
            )
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    if answer.status_code != 202:
        raise RuntimeError(f"the backtest was refused: {answer.text}")
    backtest_id: str = answer.json()["data"]["id"]
    return backtest_id


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as directory, TansuBroker() as broker:
        workdir = Path(directory)
        history = f"history-{uuid.uuid4().hex[:8]}"
        await broker.create_topics([history], partitions=bench.PARTITIONS)
        print(f"publishing {args.history:,} history and 2 x {args.live:,} live records ...")
        await bench.produce(
            broker.bootstrap_servers,
            history,
            args.history,
            bench.event_template(bench.TARGET_DESTINATION),
        )
        async with bench.StubProcess() as stub:
            alone, _ = await measure(
                workdir, "alone", broker, stub.url, args.live, None, args.max_seconds
            )
            beside, backtest = await measure(
                workdir, "beside", broker, stub.url, args.live, history, args.max_seconds
            )
        for label, rate in (("alone", alone), ("beside a backtest", beside)):
            print(f"live rate {label:<18} {rate}  ({rate.done:,} events in {rate.seconds:.1f} s)")
        print(f"  {backtest}")
        print(f"  ratio: {beside.per_second / alone.per_second:.0%} of the rate alone")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", type=int, default=200_000, help="live records per run")
    parser.add_argument("--history", type=int, default=400_000, help="records in the history")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    asyncio.run(main(parser.parse_args()))
