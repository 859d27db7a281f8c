"""The refusal to serve an open API off loopback, as an operator meets it: `trigger-daemon run`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

COMMAND = [str(Path(sys.executable).parent / "trigger-daemon")]


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_DAEMON_")}
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=60, env={**clean, **env}
    )


def test_run_refuses_a_public_host_without_authentication() -> None:
    done = run("run", TRIGGER_DAEMON_API__HOST="0.0.0.0")

    assert done.returncode == 2
    assert "configuration error" in done.stderr
    assert "refusing to serve the API on 0.0.0.0 without authentication" in done.stderr
    assert "api.auth.mode" in done.stderr
    assert "Traceback" not in done.stderr


def test_validate_reports_incomplete_authentication(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("api: {host: 0.0.0.0, auth: {mode: token, tokens: []}}\n")
    done = run("validate", "--config", str(config))

    assert done.returncode == 2
    assert "mode token needs at least one entry in tokens" in done.stderr
