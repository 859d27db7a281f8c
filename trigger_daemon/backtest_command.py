"""`trigger-daemon backtest`: one trigger over a window of the events already in Kafka, in
the foreground, with its progress on stderr and a summary (or the Backtest JSON) on stdout.

The trigger is a YAML trigger of the config (`--trigger NAME`; its stored occurrences count
as already occurred) or a file (`--trigger-file FILE`, unsaved). It reads the config's topics
outside the consumer group and calls, writes and commits nothing: safe beside a running daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from trigger_daemon.config import load_config, resolve_config_path
from trigger_daemon.core.backtests import (
    DEFAULT_SAMPLES,
    MAX_SAMPLES,
    Backtest,
    BacktestRefused,
    BacktestRequest,
    to_document,
)
from trigger_daemon.core.triggers import TriggerDefinition, yaml_trigger_id
from trigger_daemon.core.windows import parse_time
from trigger_daemon.errors import ConfigError
from trigger_daemon.observability.logs import configure_logging
from trigger_daemon.progress_line import ProgressLine
from trigger_daemon.triggers.files import load_trigger_file, load_yaml_triggers

EXIT_OK, EXIT_USAGE = 0, 2


def add_parser(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]  # argparse's own type
    config_option: Callable[[argparse.ArgumentParser], None],
) -> None:
    backtest = commands.add_parser(
        "backtest",
        help="count what a trigger would have done over the events already in Kafka",
        description="Run a trigger over the records of the config's topics stamped in "
        "[--since, --until), outside the consumer group: nothing is called, written or "
        "committed. Progress on stderr; a summary (or, with --json, the Backtest JSON) on "
        "stdout. TIME is RFC 3339 (2024-05-01T00:00:00Z) or a duration back from now (24h, 7d).",
    )
    config_option(backtest)
    which = backtest.add_mutually_exclusive_group(required=True)
    which.add_argument("--trigger", metavar="NAME", help="a YAML trigger of the config")
    which.add_argument(
        "--trigger-file", type=Path, metavar="FILE", help="a YAML or JSON trigger file"
    )
    backtest.add_argument("--since", required=True, type=_time, metavar="TIME")
    backtest.add_argument("--until", type=_time, metavar="TIME", help="default: now")
    backtest.add_argument(
        "--samples",
        type=_sample_count,
        default=DEFAULT_SAMPLES,
        metavar="N",
        help=f"matched events to show (default {DEFAULT_SAMPLES}, at most {MAX_SAMPLES})",
    )
    backtest.add_argument("--json", action="store_true", help="print the Backtest as JSON")
    backtest.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    from trigger_daemon.app import Daemon  # heavy imports, this command only
    from trigger_daemon.triggers.catalog import TriggerCatalog

    config = load_config(resolve_config_path(args.config))
    configure_logging("warning", config.settings.logging.format)
    definition, trigger_id = _trigger(args, load_yaml_triggers(config))
    request = BacktestRequest(
        compiled=TriggerCatalog.compile_definition(definition),
        trigger_id=trigger_id,
        since=args.since,
        until=args.until or datetime.now(UTC),
        topics=tuple(config.settings.kafka.topics),
        samples=args.samples,
    )
    progress = ProgressLine(sys.stderr, "read", _figures)
    try:
        result = asyncio.run(Daemon(config).backtest(request, progress.update))
    except BacktestRefused as exc:
        raise ConfigError(f"backtest: {exc}") from None
    progress.finish(result)
    if args.json:
        print(json.dumps(to_document(result), indent=2))
    else:
        print(summary(result, definition.name or str(args.trigger_file)))
    return EXIT_OK


def _trigger(
    args: argparse.Namespace, yaml_triggers: list[TriggerDefinition]
) -> tuple[TriggerDefinition, str | None]:
    if args.trigger_file is not None:
        return load_trigger_file(args.trigger_file), None
    for definition in yaml_triggers:
        if definition.name == args.trigger:
            return definition, yaml_trigger_id(args.trigger)
    known = ", ".join(sorted(d.name for d in yaml_triggers if d.name)) or "none"
    raise ConfigError(f"trigger {args.trigger!r} is not in the config (known: {known})")


def _time(text: str) -> datetime:
    try:
        return parse_time(text, datetime.now(UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _sample_count(text: str) -> int:
    if not text.isdigit() or int(text) > MAX_SAMPLES:
        raise argparse.ArgumentTypeError(f"give a number from 0 to {MAX_SAMPLES}, not {text!r}")
    return int(text)


def _figures(backtest: Backtest, seconds: float) -> tuple[int, int, str]:
    """Records read / total, with the rate so far and the time left at that rate."""
    read, total = backtest.read, max(backtest.total, backtest.read)
    rate = read / max(seconds, 1e-9)
    eta = f"{(total - read) / rate:.0f}s" if rate > 0 else "?"
    return read, total, f"{rate:,.0f}/s, ETA {eta}"


def summary(backtest: Backtest, trigger: str) -> str:
    took = (backtest.finished_at or backtest.started_at) - backtest.started_at
    rows = [
        ("trigger", trigger),
        ("topics", ", ".join(backtest.topics)),
        ("since", backtest.since.isoformat()),
        ("until", backtest.until.isoformat()),
        ("status", f"{backtest.status.value} in {took.total_seconds():.1f} s"),
        ("records read", f"{backtest.read:,}"),
        ("in the window", f"{backtest.scanned:,}"),
        ("matched", f"{backtest.matched:,}"),
        ("filter errors", f"{backtest.filter_errors:,}"),
        ("var errors", f"{backtest.var_errors:,}"),
        ("already occurred", f"{backtest.already_occurred:,}"),
        ("unprocessable", f"{backtest.unprocessable:,}"),
    ]
    if backtest.error:
        rows.append(("error", backtest.error))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    if backtest.samples:
        lines += ["", f"samples ({len(backtest.samples)} of {backtest.matched:,} matched):"]
        for sample in backtest.samples:
            where = f"{sample.topic}/{sample.partition}@{sample.offset}"
            shown = json.dumps(sample.vars) if sample.error is None else f"error: {sample.error}"
            lines.append(f"  {sample.date.isoformat()}  {where}  {sample.event_id}  {shown}")
    return "\n".join(lines)
