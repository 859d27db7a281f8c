"""`trigger-daemon backtest` as a user runs it: a process, the real broker, a config file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from trigger_daemon.devtools.broker import TansuBroker

from .conftest import daemon_settings
from .test_backtests import BASE, TRIGGER, history, produce_stamped
from .test_cli import run_cli


def write_config(broker: TansuBroker, topic: str, tmp_path: Path) -> Path:
    settings = daemon_settings(
        broker, topic, "http://127.0.0.1:9", f"sqlite:///{tmp_path}/store.db", triggers=[TRIGGER]
    )
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


async def test_the_command_shows_progress_and_a_summary_and_exits_0(
    broker: TansuBroker, topic: str, tmp_path: Path
) -> None:
    records = history()
    await produce_stamped(broker.bootstrap_servers, topic, records)
    config = write_config(broker, topic, tmp_path)

    done = run_cli("backtest", "--config", str(config), "--trigger", "big-deposit", "--since", "1d")

    assert done.returncode == 0, done.stderr
    assert f"read {len(records)} / {len(records)} records (100%)" in done.stderr
    assert "ETA 0s" in done.stderr
    table = done.stdout.split("\n\n")[0].splitlines()
    summary = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in table)
    assert summary["matched"] == "5"
    assert summary["var errors"] == "2"
    assert summary["filter errors"] == "2"
    assert summary["already occurred"] == "0"  # nothing ran live: the store is empty
    assert summary["status"].startswith("succeeded")
    assert "COMMITTED_TRANSACTIONS:tx-main-4" in done.stdout
    assert "error: var 'channel'" in done.stdout


async def test_json_prints_the_backtest_of_a_trigger_file(
    broker: TansuBroker, topic: str, tmp_path: Path
) -> None:
    await produce_stamped(broker.bootstrap_servers, topic, history())
    config = write_config(broker, topic, tmp_path)
    trigger_file = tmp_path / "one.json"
    trigger_file.write_text(json.dumps({**TRIGGER, "filter": None}))
    since = BASE.isoformat().replace("+00:00", "Z")

    done = run_cli(
        "backtest",
        "--config",
        str(config),
        "--trigger-file",
        str(trigger_file),
        "--since",
        since,
        "--samples",
        "2",
        "--json",
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    assert "triggerID" not in result
    assert (result["matched"], result["scanned"], len(result["samples"])) == (10, 12, 2)
    assert result["since"] == since


def test_a_bad_time_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli("backtest", "--trigger", "x", "--since", "last tuesday")

    assert done.returncode == 2
    assert "argument --since" in done.stderr
    assert "24h" in done.stderr
    assert "Traceback" not in done.stderr
