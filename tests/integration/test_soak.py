"""The soak's quick run (bench/soak.py --quick): 3 replicas on PostgreSQL under a live stream
of 200 events/s while a replica is SIGKILLed, another SIGSTOPped past its session timeout,
PostgreSQL restarted and the API answering 503 for 10 s. Nothing may be lost or fail, and no
workflow may be called again after a 2xx answer outside the crash window of a SIGKILL or a
freeze (bench/soak_report.py defines them)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
WITHIN_SECONDS = 300  # typically 90 s: a minute of stream, start-up and drain


def run_quick_soak(report_path: Path) -> tuple[int, str]:
    """The exit status and output of a quick soak; on a timeout it gets SIGTERM first, so
    that it stops what it started."""
    soak = subprocess.Popen(
        [sys.executable, str(SOAK), "--quick", "--json", str(report_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = soak.communicate(timeout=WITHIN_SECONDS)
    except subprocess.TimeoutExpired:
        soak.send_signal(signal.SIGTERM)
        output, _ = soak.communicate(timeout=60)
        raise RuntimeError(f"the soak did not end within {WITHIN_SECONDS} s:\n{output}") from None
    return soak.returncode, output


@pytest.mark.slow
@pytest.mark.timeout(WITHIN_SECONDS + 90)
def test_a_live_stream_through_mixed_faults_loses_nothing_and_repeats_only_after_a_crash(
    tmp_path: Path,
) -> None:
    report_path = tmp_path / "soak.json"
    status, output = run_quick_soak(report_path)
    assert report_path.exists(), f"the soak wrote no report (exit status {status}):\n{output}"
    report = json.loads(report_path.read_text())
    print(output)

    assert report["produced"] > 5000, output
    assert report["matched"] > 0.5 * report["produced"], output
    assert report["lost"] == [], output
    assert report["statuses"].get("failed", 0) == 0, output
    assert [r for r in report["repeats"] if r["unexplained"] is not None] == [], output
    assert report["multiple_occurrences"] == [], output
    assert all(o["committed"] == o["end"] for o in report["offsets"]), output
    assert report["replica_exits"] == [], output
    assert [f["name"] for f in report["faults"]] == ["kill", "stop", "postgres", "api-503"]
    assert report["problems"] == [], output
    assert status == 0, output
