"""The matched path's CPU per run in one process, without the broker or the ceilings.

Row 1 of bench/throughput.py compares the daemon's rate with bare aiohttp's, and on a shared
VM both move with the host: on unchanged code its ratio went from 0.26x to 0.30x within an
hour. This script assembles the engine as the daemon does (Pipeline, RecordHandler,
OccurrenceRunner, WorkflowCaller, the SQLite store in a file with its writer thread, the
OrchestrationClient calling the stub API in its own process, one info line per occurrence to
a log file, what start-up built frozen) and feeds it from memory (`testing.ListSource`, 500
records a fetch, 8 partitions, 4,096 keys) instead of Kafka. It prints the process's CPU time
per run, pass by pass: the figure to compare two versions of the code with, run in turn.

    .venv/bin/python bench/matched_path.py                  # 5 passes of 5,000 runs
    .venv/bin/python bench/matched_path.py --api none       # every call answered at once

`--api none` answers every call in-process (`testing.ScriptedWorkflowApi`): the difference
between the two is what a runWorkflow request costs inside the daemon. Young and older
garbage collections during the passes are reported too (count, total and longest).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import throughput as bench  # the helpers of bench/throughput.py, beside this file

from trigger_daemon import heap
from trigger_daemon.adapters.orchestration import OrchestrationClient
from trigger_daemon.adapters.store import SqlStore, open_store
from trigger_daemon.core.retry import RetryPolicy
from trigger_daemon.core.triggers import parse_definition
from trigger_daemon.engine.calls import WorkflowCaller
from trigger_daemon.engine.pipeline import Pipeline
from trigger_daemon.engine.records import LogOnlyDeadLetters, RecordHandler
from trigger_daemon.engine.runner import OccurrenceRunner
from trigger_daemon.observability.logs import configure_logging
from trigger_daemon.ports import SourceRecord, WorkflowApi
from trigger_daemon.testing import ListSource, ScriptedWorkflowApi
from trigger_daemon.triggers.catalog import TriggerCatalog

FETCH_RECORDS = 500
MAX_IN_FLIGHT = 1024  # the daemon's default (pipeline.max_in_flight)


class Collections:
    """Garbage collections by generation: how many, how long in all, the longest."""

    def __init__(self) -> None:
        self.by_generation = {generation: [0, 0.0, 0.0] for generation in range(3)}
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        counted = self.by_generation[info["generation"]]
        counted[0] += 1
        counted[1] += took
        counted[2] = max(counted[2], took)

    def report(self) -> str:
        return "; ".join(
            f"generation {n}: {count}, {total * 1e3:.0f} ms, longest {longest * 1e3:.0f} ms"
            for n, (count, total, longest) in self.by_generation.items()
        )


def records(topic: str, first: int, count: int) -> list[SourceRecord]:
    """Matching events `first` to `first + count - 1` (each a new event: a new occurrence), in
    partition order, keyed as bench/throughput.py produces them."""
    template = bench.event_template(bench.TARGET_DESTINATION)
    by_partition: dict[int, list[int]] = {}
    for number in range(first, first + count):
        by_partition.setdefault((number % bench.DISTINCT_KEYS) % bench.PARTITIONS, []).append(
            number
        )
    return [
        SourceRecord(
            topic, partition, offset, bench.record_key(number), bench.numbered(template, number)
        )
        for partition, numbers in sorted(by_partition.items())
        for offset, number in enumerate(numbers)
    ]


@contextmanager
def logs_to(path: Path) -> Iterator[None]:
    """The daemon's log lines (stderr) written to `path`, as the benchmark's daemon writes."""
    with path.open("w") as log:
        stderr, sys.stderr = sys.stderr, log
        try:
            configure_logging("info")
            yield
        finally:
            sys.stderr = stderr


async def passes(api: WorkflowApi, store: SqlStore, runs: int, count: int) -> list[float]:
    """CPU µs per run of each pass."""
    catalog = TriggerCatalog(store)
    definition = parse_definition(bench.trigger("matched-path", bench.TARGET_DESTINATION))
    await catalog.reconcile_yaml([definition])
    caller = WorkflowCaller(api, RetryPolicy())
    handler = RecordHandler(catalog, store, OccurrenceRunner(store, caller), LogOnlyDeadLetters())
    heap.freeze_what_start_up_built()
    cpu_per_run = []
    for number in range(count):
        events = records(f"pass-{number}", number * runs, runs)
        source = ListSource(events, batch_size=FETCH_RECORDS)
        pipeline = Pipeline(source, handler, max_in_flight=MAX_IN_FLIGHT)
        started_cpu, started = time.process_time(), time.perf_counter()
        await pipeline.run(asyncio.Event(), until_idle=True)
        cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
        cpu_per_run.append(cpu / runs * 1e6)
        print(f"  pass {number + 1}: {cpu_per_run[-1]:.0f} µs CPU a run, {runs / wall:,.0f} runs/s")
    return cpu_per_run


async def main(arguments: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="matched-path-") as scratch:
        store = await open_store(f"sqlite:///{scratch}/store.db")
        collections = Collections()
        try:
            with logs_to(Path(scratch) / "daemon.log"):
                if arguments.api == "none":
                    gc.callbacks.append(collections)
                    cpu = await passes(
                        ScriptedWorkflowApi(), store, arguments.runs, arguments.passes
                    )
                else:
                    async with (
                        bench.StubProcess() as stub,
                        OrchestrationClient(
                            stub.url, "v2", None, 10.0, max_connections=MAX_IN_FLIGHT
                        ) as client,
                    ):
                        gc.callbacks.append(collections)
                        cpu = await passes(client, store, arguments.runs, arguments.passes)
        finally:
            gc.callbacks.remove(collections)
            await store.close()
    print(f"median {statistics.median(cpu):.0f} µs CPU a run, best {min(cpu):.0f} µs")
    print(f"collections: {collections.report()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5_000, help="matched events a pass")
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--api", choices=("http", "none"), default="http")
    asyncio.run(main(parser.parse_args()))
