"""The `trigger-daemon` command: run, validate, test-trigger, demo. Thin: parses arguments,
loads config, calls app/config/core, and turns known errors into messages and exit codes."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from trigger_daemon import __version__, backfill_command, backtest_command
from trigger_daemon.config import (
    CONFIG_PATH_ENV,
    LoadedConfig,
    load_config,
    resolve_config_path,
)
from trigger_daemon.core.events import Unprocessable
from trigger_daemon.core.occurrences import Occurrence, OccurrenceStatus
from trigger_daemon.core.rehearsal import explain, rehearsal_event
from trigger_daemon.errors import (
    BrokerError,
    ConfigError,
    NotFoundError,
    PartFailed,
    StartupError,
    StoreError,
)
from trigger_daemon.observability.logs import configure_logging
from trigger_daemon.observability.redaction import collect_secrets
from trigger_daemon.triggers.files import load_trigger_file, load_yaml_triggers

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except EventFileError as exc:
        _error("bad event", str(exc))
        return EXIT_USAGE
    except ConfigError as exc:
        _error("configuration error", str(exc))
        return EXIT_USAGE
    except NotFoundError as exc:
        _error("not found", str(exc))
        return EXIT_USAGE
    except (BrokerError, StoreError, StartupError) as exc:
        _error("cannot run", str(exc))
        return EXIT_FAILURE
    except PartFailed as exc:
        # Logged with its cause when it happened; the other parts have stopped gracefully.
        _error("stopped", f"{exc}; the orchestrator should restart the daemon")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trigger-daemon",
        description="Turns Formance ledger and payment events into orchestration workflow runs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def config_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--config", metavar="PATH", help="YAML config file (default: $TRIGGER_DAEMON_CONFIG)"
        )

    run = commands.add_parser(
        "run",
        help="run the daemon",
        description="Consume events, run workflows, serve the API. SIGTERM or Ctrl-C stops it "
        "gracefully (exit 0); SIGHUP reloads the YAML triggers. Exit 2: the config is wrong; "
        "exit 1: it cannot run (Kafka, the store, a port) or a part of it died.",
    )
    config_option(run)
    run.set_defaults(command=_run)

    validate = commands.add_parser(
        "validate",
        help="check a config and its triggers",
        description="Check the config and every YAML trigger; list every problem and exit 2 if "
        "any. Warnings (exit 0) flag triggers that are valid but likely wrong.",
    )
    config_option(validate)
    validate.set_defaults(command=_validate)

    test = commands.add_parser(
        "test-trigger",
        help="evaluate a trigger against an event file, and explain the answer",
        description="Evaluate a trigger against an event and print the answer as JSON, as the "
        "API's testTrigger does: match, filter error, vars, and `explain` (what decided it; its "
        "one-sentence decision also goes to stderr). A full envelope is checked on type and "
        "version too, a bare payload on the filter and vars only. Nothing is called or stored.",
    )
    config_option(test)
    which = test.add_mutually_exclusive_group(required=True)
    which.add_argument("--trigger", metavar="NAME", help="a YAML trigger of the config, by name")
    which.add_argument(
        "--trigger-file",
        type=Path,
        metavar="FILE",
        help="a trigger that is not in the config: a YAML or JSON file holding one",
    )
    test.add_argument(
        "--event",
        required=True,
        metavar="FILE",
        help="a JSON event (a full envelope or a bare payload); - for stdin",
    )
    test.set_defaults(command=_test_trigger)

    retry = commands.add_parser(
        "retry-failed",
        help="run a trigger's failed occurrences again (same idempotency keys)",
        description="Run a trigger's failed occurrences again, oldest first, with their "
        "idempotency keys; prints each outcome. Exit 1 if any failed again. Works beside a "
        "running daemon (it needs the store and the orchestration API).",
    )
    config_option(retry)
    retry.add_argument(
        "--trigger", required=True, metavar="ID|NAME", help="the trigger's id or name"
    )
    retry.add_argument(
        "--since",
        type=_timestamp,
        metavar="TIME",
        help="only occurrences recorded at or after TIME (ISO 8601; UTC when no offset)",
    )
    retry.set_defaults(command=_retry_failed)

    backtest_command.add_parser(commands, config_option)
    backfill_command.add_parser(commands, config_option)

    demo = commands.add_parser(
        "demo",
        help="run everything locally: broker, stub orchestration API, daemon, events",
        description="Start Tansu and a stub orchestration API, run the daemon with the example "
        "triggers, publish events and print the occurrences. Ctrl-C, SIGTERM or SIGHUP stop it "
        "and everything it started.",
    )
    demo.add_argument("--rounds", type=int, default=4, help="event rounds to publish")
    demo.add_argument(
        "--triggers",
        type=Path,
        metavar="DIR",
        help="directory of trigger YAML files (default: the example triggers)",
    )
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="keep the daemon and its API up after the demo events",
    )
    demo.set_defaults(command=_demo)

    dev = commands.add_parser(
        "dev",
        help="start only the broker and the stub orchestration API, to try `run` by hand",
        description="Start Tansu (topics ledger, payments, trigger-daemon-dlq) and the stub "
        "orchestration API on 127.0.0.1, print how to point `run` at them, and keep them up "
        "until Ctrl-C, SIGTERM or a hangup.",
    )
    dev.add_argument("--broker-port", type=int, default=9092, help="0 picks a free port")
    dev.add_argument("--stub-port", type=int, default=8080, help="0 picks a free port")
    dev.set_defaults(command=_dev)
    return parser


def _load(args: argparse.Namespace) -> LoadedConfig:
    return load_config(resolve_config_path(args.config))


def _run(args: argparse.Namespace) -> int:
    from trigger_daemon.app import Daemon  # heavy imports, run only
    from trigger_daemon.lifecycle import install_reload_signal, install_stop_signals

    config = _load(args)
    load_yaml_triggers(config)  # fail fast, before logging is redirected
    if config.path is None:
        print(f"trigger-daemon: {_no_config(config)}", file=sys.stderr)
    logging_settings = config.settings.logging
    secrets = collect_secrets(config.settings)  # never printed, whatever logs them
    configure_logging(logging_settings.level, logging_settings.format, secrets=secrets)

    async def serve() -> None:
        stop = asyncio.Event()
        daemon = Daemon(config)
        install_stop_signals(stop)
        install_reload_signal(daemon.request_reload)
        await daemon.run(stop)

    asyncio.run(serve())
    return EXIT_OK


def _no_config(config: LoadedConfig) -> str:
    """What a run without a config file uses; the store by its kind only (its URL may hold a
    password)."""
    settings = config.settings
    store = settings.store.url.split(":", 1)[0]
    return (
        f"no config file (--config or ${CONFIG_PATH_ENV}): the defaults and TRIGGER_DAEMON_* "
        f"variables only: Kafka at {settings.kafka.bootstrap_servers} (topics "
        f"{', '.join(settings.kafka.topics)}), a {store} store, the API on "
        f"{settings.api.host}:{settings.api.port}, {len(settings.triggers)} YAML trigger(s)"
    )


def _validate(args: argparse.Namespace) -> int:
    from trigger_daemon.core.advice import trigger_warnings
    from trigger_daemon.triggers.catalog import TriggerCatalog

    config = _load(args)
    triggers = load_yaml_triggers(config)
    where = config.path or "environment/defaults"
    for definition in triggers:
        for warning in trigger_warnings(TriggerCatalog.compile_definition(definition)):
            print(f"warning: {where}: trigger {definition.name}: {warning}", file=sys.stderr)
    if config.path is None:
        print(f"warning: {_no_config(config)}", file=sys.stderr)
    print(f"{where}: configuration valid, {len(triggers)} YAML trigger(s)")
    return EXIT_OK


def _test_trigger(args: argparse.Namespace) -> int:
    from trigger_daemon.app import trigger_test_answer
    from trigger_daemon.triggers.catalog import TriggerCatalog

    if args.trigger_file is not None:
        definition = load_trigger_file(args.trigger_file)
    else:
        definitions = {d.name: d for d in load_yaml_triggers(_load(args))}
        found = definitions.get(args.trigger)
        if found is None:
            known = ", ".join(sorted(name for name in definitions if name)) or "none"
            _error("unknown trigger", f"{args.trigger!r} is not in the config (known: {known})")
            return EXIT_USAGE
        definition = found
    event = rehearsal_event(_read_event(args.event), definition.event)
    if isinstance(event, Unprocessable):
        _error("unprocessable event", event.detail)
        return EXIT_USAGE
    report = explain(TriggerCatalog.compile_definition(definition), event)
    answer = {"trigger": definition.name, **trigger_test_answer(report)}
    print(json.dumps(answer, indent=2))
    print(report.explanation.decision, file=sys.stderr)
    return EXIT_OK


class EventFileError(Exception):
    """The event given to test-trigger cannot be read or parsed."""


def _read_event(source: str) -> object:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise EventFileError(f"{source}: cannot read the event file: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventFileError(f"{source}: not valid JSON: {exc}") from None


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _retry_failed(args: argparse.Namespace) -> int:
    from trigger_daemon.app import Daemon

    config = _load(args)
    configure_logging("warning", config.settings.logging.format)
    counts = {status: 0 for status in OccurrenceStatus}
    started = time.monotonic()

    def progress(occurrence: Occurrence) -> None:
        counts[occurrence.status] += 1
        done = sum(counts.values())
        rate = done / max(time.monotonic() - started, 1e-9)
        detail = occurrence.workflow_instance_id or occurrence.error or ""
        print(f"[{done}] {occurrence.id} {occurrence.status.value} {detail}  ({rate:.1f}/s)")

    asyncio.run(Daemon(config).retry_failed(args.trigger, args.since, progress))
    retried = sum(counts.values())
    print(
        f"retried {retried} failed occurrence(s) of trigger {args.trigger}: "
        f"{counts[OccurrenceStatus.SUCCEEDED]} succeeded, "
        f"{counts[OccurrenceStatus.FAILED]} failed again"
    )
    return EXIT_OK if counts[OccurrenceStatus.FAILED] == 0 else EXIT_FAILURE


def _dev(args: argparse.Namespace) -> int:
    from trigger_daemon.devtools.dev import run_dev

    asyncio.run(run_dev(lambda line: print(line, flush=True), args.broker_port, args.stub_port))
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from trigger_daemon.devtools import demo

    configure_logging("info", "console")
    return demo.main(args.rounds, args.triggers, args.keep_running)


def _error(title: str, detail: str) -> None:
    lines = detail.splitlines() or [""]
    print(f"trigger-daemon: {title}:", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)
