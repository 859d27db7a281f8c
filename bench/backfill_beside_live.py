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
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
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
    args: argparse.Namespace,
    with_backfill: bool,
) -> tuple[bench.Rate, str]:
    topic = f"live-{name}-{uuid.uuid4().hex[:8]}"
    await broker.create_topics([topic], partitions=bench.PARTITIONS)
    since = datetime.now(UTC) - timedelta(minutes=1)
    history = sum(
        (
            await bench.produce(
                broker.bootstrap_servers,
                topic,
                args.history,
                bench.event_template(bench.TARGET_DESTINATION),
            )
        ).values()
    )
    await asyncio.sleep(0.01)
    until = datetime.now(UTC)
    daemon = bench.DaemonProcess(
        workdir,
        name,
        bootstrap=broker.bootstrap_servers,
        topic=topic,
        stub_url=stub_url,
        triggers=[],
    )
    daemon._config["backfill"] = {"max_in_flight": args.backfill_in_flight}
    api = f"http://127.0.0.1:{daemon._config['api']['port']}"
    async with bench.CommitWatcher(broker.bootstrap_servers, daemon.group_id, topic) as watcher:
        async with bench.running(daemon, None), httpx.AsyncClient(base_url=api) as client:
            await bench.measure_progress(watcher.total, history, args.max_seconds, daemon)
            created = await client.post("/v2/triggers", json=TRIGGER)
            trigger_id = created.json()["data"]["id"]
        goal = sum(  # the partitions' end offsets: history and live
            (
                await bench.produce(
                    broker.bootstrap_servers, topic, args.live, bench.event_template("users:1")
                )
            ).values()
        )
        async with bench.running(daemon, None), httpx.AsyncClient(base_url=api) as client:
            backfill_id = None
            if with_backfill:
                backfill_id = await start_backfill(client, daemon, trigger_id, since, until)
            started = time.monotonic()
            rate = await bench.measure_progress(watcher.total, goal, args.max_seconds, daemon)
            if backfill_id is None:
                return rate, ""
            body = (await client.get(f"/v2/backfills/{backfill_id}")).json()["data"]
    seconds = time.monotonic() - started
    return rate, (
        f"backfill {body['status']}: {body['ran']:,} of {args.history:,} events run "
        f"({body['ran'] / seconds:,.0f}/s over the live run's {seconds:.1f} s; "
        f"{body['progress']['read']:,} records read)"
    )


async def start_backfill(
    client: httpx.AsyncClient,
    daemon: bench.DaemonProcess,
    trigger_id: str,
    since: datetime,
    until: datetime,
) -> str:
    deadline = time.monotonic() + bench.START_TIMEOUT_SECONDS
    body = {"triggerID": trigger_id, "since": since.isoformat(), "until": until.isoformat()}
    while True:
        daemon.check_alive()
        try:
            answer = await client.post("/v2/backfills", json=body)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    if answer.status_code != 202:
        raise RuntimeError(f"the backfill was refused: {answer.text}")
    backfill_id: str = answer.json()["data"]["id"]
    return backfill_id


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as directory, TansuBroker() as broker:
        workdir = Path(directory)
        print(f"each run: {args.history:,} history and {args.live:,} live records ...")
        async with bench.StubProcess() as stub:
            alone, _ = await measure(workdir, "alone", broker, stub.url, args, False)
            beside, backfill = await measure(workdir, "beside", broker, stub.url, args, True)
        for label, rate in (("alone", alone), ("beside a backfill", beside)):
            print(f"live rate {label:<18} {rate}  ({rate.done:,} events in {rate.seconds:.1f} s)")
        print(f"  {backfill}")
        print(f"  ratio: {beside.per_second / alone.per_second:.0%} of the rate alone")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", type=int, default=200_000, help="live records per run")
    parser.add_argument("--history", type=int, default=20_000, help="events to backfill")
    parser.add_argument(
        "--backfill-in-flight", type=int, default=256, help="backfill.max_in_flight"
    )
    parser.add_argument("--max-seconds", type=float, default=60.0)
    asyncio.run(main(parser.parse_args()))
