"""The `trigger-daemon` command as a user runs it: real processes, real broker and stub."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from trigger_daemon.core.triggers import yaml_trigger_id
from trigger_daemon.devtools import events
from trigger_daemon.devtools.broker import TansuBroker, free_port
from trigger_daemon.devtools.stub_orchestration import StubOrchestration

from .conftest import daemon_settings, produce, wait_until

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "config" / "trigger-daemon.yaml"
COMMAND = [str(Path(sys.executable).parent / "trigger-daemon")]


def clean_env() -> dict[str, str]:
    """This environment without TRIGGER_DAEMON_ variables: the commands see only their args."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_DAEMON_")}


async def start_cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=clean_env(),
    )


async def read_until(process: asyncio.subprocess.Process, marker: str, within: float) -> str:
    """What the process printed, up to and including the line holding `marker`."""
    assert process.stdout is not None
    said = ""
    while marker not in said:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=within)
        assert line, f"it ended before saying {marker!r}: {said}"
        said += line.decode()
    return said


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
        env=clean_env(),
    )


def test_validate_accepts_the_example_config() -> None:
    done = run_cli("validate", "--config", str(EXAMPLE_CONFIG))
    assert done.returncode == 0, done.stderr
    assert "configuration valid, 3 YAML trigger(s)" in done.stdout


def test_a_bad_config_stops_with_a_message_naming_file_and_key_and_no_traceback(
    tmp_path: Path,
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "kafka: {topics: []}\n"
        "triggers:\n  - {name: t, event: E, workflowID: w, filter: 'status == \"DONE\"'}\n"
    )
    for command in ("validate", "run"):
        done = run_cli(command, "--config", str(config))
        assert done.returncode == 2
        assert f"{config}: kafka.topics: List should have at least 1 item" in done.stderr
        assert "Traceback" not in done.stderr


def test_trigger_problems_are_all_listed_by_validate(tmp_path: Path) -> None:
    config = tmp_path / "triggers.yaml"
    config.write_text(
        "triggers:\n"
        "  - {name: a, event: E, workflowID: w, filter: 'status == \"DONE\"'}\n"
        "  - {name: b, workflowID: w, vars: {x: 'to_string('}}\n"
    )
    done = run_cli("validate", "--config", str(config))
    assert done.returncode == 2
    assert 'triggers[0] (a): filter \'status == "DONE"\': "DONE" is a field name' in done.stderr
    assert "triggers[1] (b): event: is required" in done.stderr
    assert "Traceback" not in done.stderr


def test_test_trigger_prints_the_match_and_rendered_vars(tmp_path: Path) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(events.saved_payment("SUCCEEDED", 2**60)))
    done = run_cli(
        "test-trigger",
        "--config",
        str(EXAMPLE_CONFIG),
        "--trigger",
        "payment-succeeded",
        "--event",
        str(event_file),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["filter"] == {"match": True}
    assert report["variables"]["amount"] == {"value": str(2**60)}
    assert report["variables"]["provider"] == {"value": "STRIPE"}


def test_test_trigger_accepts_a_bare_payload_on_stdin() -> None:
    done = run_cli(
        "test-trigger",
        "--config",
        str(EXAMPLE_CONFIG),
        "--trigger",
        "payment-succeeded",
        "--event",
        "-",
        stdin=json.dumps({"status": "PENDING"}),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["filter"] == {"match": False}
    assert "error" in report["variables"]["paymentID"]


def test_test_trigger_explains_a_trigger_file_not_in_the_config(tmp_path: Path) -> None:
    trigger_file = tmp_path / "large-deposits.yaml"
    trigger_file.write_text(
        "event: SAVED_PAYMENT\n"
        "workflowID: review\n"
        "filter: event.status == 'SUCCEEDED' && event.amount > `1000`\n"
        "vars: {amount: event.amount}\n"
    )
    done = run_cli(
        "test-trigger",
        "--trigger-file",
        str(trigger_file),
        "--event",
        "-",
        stdin=json.dumps({"status": "SUCCEEDED", "amount": 20}),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["trigger"] is None
    assert report["filter"] == {"match": False}
    clauses = report["explain"]["filter"]["clauses"]
    assert [clause["value"] for clause in clauses] == [True, False]
    assert done.stderr.strip() == (
        "no match: the filter is false: clause 2 of 2, `event.amount > `1000``, is false "
        "(a bare payload: its type and version are not checked)"
    )


def test_test_trigger_takes_a_name_or_a_file_not_both(tmp_path: Path) -> None:
    done = run_cli(
        "test-trigger", "--trigger", "a", "--trigger-file", str(tmp_path / "t.yaml"), "--event", "-"
    )
    assert done.returncode == 2
    assert "not allowed with argument" in done.stderr


def test_test_trigger_names_the_problem_in_a_trigger_file(tmp_path: Path) -> None:
    trigger_file = tmp_path / "bad.yaml"
    trigger_file.write_text("event: SAVED_PAYMENT\nworkflowID: wf\nfilter: 'amount >'\n")
    done = run_cli("test-trigger", "--trigger-file", str(trigger_file), "--event", "-", stdin="{}")
    assert done.returncode == 2
    assert f"{trigger_file}: filter 'amount >'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_demo_runs_end_to_end() -> None:
    done = run_cli("demo", "--rounds", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "6 workflow runs" in done.stdout
    assert "  ... and more: the newest 3 are shown" not in done.stdout  # 2 per trigger
    for name in ("large-usd-deposit", "payment-succeeded", "account-flagged-for-review"):
        assert name in done.stdout
    assert "succeeded" in done.stdout
    assert "occurrence.succeeded" in done.stderr  # the daemon's own log lines


def children_of(pid: int) -> set[int]:
    """The processes whose parent is `pid`, read from /proc."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_hangup_stops_the_kept_demo_and_everything_it_started() -> None:
    demo = await start_cli("demo", "--rounds", "1", "--keep-running")
    try:
        await read_until(demo, "keeps running", within=120)
        started = children_of(demo.pid)
        assert started, "the demo should have started the broker"
        demo.send_signal(signal.SIGHUP)
        await asyncio.wait_for(demo.wait(), timeout=30)
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
    assert demo.returncode == 0
    await wait_until(
        lambda: not any(alive(pid) for pid in started),
        within_seconds=5,
        what="the broker to stop with the demo",
    )


async def test_run_serves_the_api_processes_events_and_stops_cleanly_on_sigterm(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "daemon.yaml"
    config.write_text(
        yaml.safe_dump(
            daemon_settings(
                broker,
                topic,
                stub.url,
                f"sqlite:///{tmp_path}/store.db",
                orchestration={"api_version": "v1"},
                api={"port": port},
                triggers=[
                    {
                        "name": "succeeded",
                        "event": "SAVED_PAYMENT",
                        "filter": "event.status == 'SUCCEEDED'",
                        "workflowID": "settle",
                        "vars": {"payment": "event.id"},
                    }
                ],
            )
        )
    )
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:

            async def healthy() -> bool:
                try:
                    return (await api.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(healthy, what="the API to answer")
            await produce(
                broker.bootstrap_servers,
                topic,
                [
                    events.encode(events.saved_payment("SUCCEEDED", 10)),
                    events.encode(events.saved_payment("FAILED", 10)),
                ],
            )
            await wait_until(lambda: len(stub.calls) == 1, what="one workflow run")
            listed = (await api.get("/triggers", params={"name": "SUCC"})).json()["data"]
            assert [t["name"] for t in listed] == ["succeeded"]
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()[-2000:]
    log_lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    succeeded = [line for line in log_lines if line["event"] == "occurrence.succeeded"]
    assert len(succeeded) == 1
    assert succeeded[0]["workflow_instance_id"]
    assert succeeded[0]["trigger_id"] == yaml_trigger_id("succeeded")
    assert {"event_id", "event_type", "trigger_id", "topic", "partition", "offset"} <= set(
        succeeded[0]
    )
    assert any(line["event"] == "daemon.stopped" for line in log_lines)


async def test_a_busy_api_port_stops_the_start_before_the_group_is_joined(
    broker: TansuBroker, stub: StubOrchestration, topic: str, tmp_path: Path
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = daemon_settings(
            broker, topic, stub.url, f"sqlite:///{tmp_path}/store.db", api={"port": port}
        )
        config = tmp_path / "daemon.yaml"
        config.write_text(yaml.safe_dump(settings))
        started = time.monotonic()
        done = await asyncio.to_thread(run_cli, "run", "--config", str(config))
        took = time.monotonic() - started

    assert done.returncode == 1
    assert (
        "trigger-daemon: cannot run:\n"
        f"  the API cannot listen on 127.0.0.1:{port}: Address already in use\n"
    ) in done.stderr
    assert "partitions.assigned" not in done.stderr  # it never joined the consumer group
    assert took < 10


def test_validate_warns_of_a_var_that_can_render_null_and_still_passes(tmp_path: Path) -> None:
    config = tmp_path / "daemon.yaml"
    config.write_text(
        "triggers:\n"
        "  - {name: pay, event: SAVED_PAYMENT, workflowID: w,"
        " vars: {amount: 'to_string(event.amount)'}}\n"
    )
    done = run_cli("validate", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert (
        f"warning: {config}: trigger pay: vars.amount: to_string(event.amount) renders the "
        'string "null" when the field is missing'
    ) in done.stderr


async def test_an_unreachable_broker_stops_the_start_with_a_sentence(
    stub: StubOrchestration, tmp_path: Path
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    config = tmp_path / "daemon.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": closed, "topics": ["ledger"]},
                "orchestration": {"base_url": stub.url},
                "store": {"url": f"sqlite:///{tmp_path}/store.db"},
                "api": {"port": 0},
            }
        )
    )
    done = await asyncio.to_thread(run_cli, "run", "--config", str(config))
    assert done.returncode == 1
    assert (
        "trigger-daemon: cannot run:\n"
        f"  cannot start the Kafka producer: no broker at {closed} answered (is it running, "
        "and is kafka.bootstrap_servers right?)\n"
    ) in done.stderr


def test_validate_without_a_config_says_it_checked_the_defaults_only() -> None:
    done = run_cli("validate")
    assert done.returncode == 0, done.stderr
    assert (
        "warning: no config file (--config or $TRIGGER_DAEMON_CONFIG): the defaults and "
        "TRIGGER_DAEMON_* variables only: Kafka at localhost:9092 (topics ledger, payments), a "
        "sqlite store, the API on 127.0.0.1:8081, 0 YAML trigger(s)\n"
    ) in done.stderr


def test_every_command_has_a_description_and_run_names_its_signals_and_exit_codes() -> None:
    for command in ("run", "validate", "test-trigger", "retry-failed", "demo"):
        shown = run_cli(command, "--help").stdout
        assert shown.split("\n\n")[1].strip(), f"{command} --help has no description"
    run_help = " ".join(run_cli("run", "--help").stdout.split())
    assert "SIGHUP reloads the YAML triggers" in run_help
    assert "Exit 2: the config is wrong" in run_help


def test_test_trigger_heads_an_unreadable_event_by_what_went_wrong(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text("{not json")
    done = run_cli(
        "test-trigger",
        "--config",
        str(EXAMPLE_CONFIG),
        "--trigger",
        "payment-succeeded",
        "--event",
        str(event),
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"trigger-daemon: bad event:\n  {event}: not valid JSON: ")


def test_the_demo_says_when_a_trigger_has_more_occurrences_than_it_shows() -> None:
    done = run_cli("demo", "--rounds", "4")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("  ... and more: the newest 3 are shown") == 3  # each trigger


async def test_dev_serves_the_broker_and_stub_until_stopped_then_stops_both() -> None:
    dev = await start_cli("dev", "--broker-port", "0", "--stub-port", "0")
    try:
        said = await read_until(dev, "Ctrl-C stops both", within=60)
        stub_url = said.split("stub orchestration API at ", 1)[1].split()[0]
        bootstrap = said.split("Kafka (Tansu) at ", 1)[1].split(",")[0]
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{stub_url}/_stub/calls")).status_code == 200
        await produce(bootstrap, "ledger", [events.encode(events.saved_payment("SUCCEEDED", 1))])
        started = children_of(dev.pid)
        dev.send_signal(signal.SIGTERM)
        await asyncio.wait_for(dev.wait(), timeout=30)
    finally:
        if dev.returncode is None:
            dev.kill()
            await dev.wait()
    assert dev.returncode == 0
    assert f"TRIGGER_DAEMON_KAFKA__BOOTSTRAP_SERVERS={bootstrap}" in said
    await wait_until(
        lambda: not any(alive(pid) for pid in started), within_seconds=5, what="the broker to stop"
    )
