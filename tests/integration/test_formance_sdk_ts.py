"""The official Formance TypeScript SDK (`@formance/formance-sdk`, pinned in tests/sdk_ts),
unchanged, against the daemon's API: tests/sdk_ts/drive.mjs makes each orchestration trigger call
through the SDK and prints what the SDK parsed, one JSON line per call; these tests serve the API
on the real SQLite store, seed it, run the script and assert on each line. The SDK checks every
answer with its own zod schemas, stricter than the Python SDK's models (an optional field must be
absent, not null) and, like them, blind to fields it does not know. Fails, never skips, when node
or the npm packages are missing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.integration.test_formance_sdk import INSTANCE, TRIGGER, record_outcomes
from trigger_daemon.adapters.api import ApiAuth, StaticTokens, create_api, serving
from trigger_daemon.core.triggers import parse_definition, yaml_trigger_id
from trigger_daemon.ports import Store
from trigger_daemon.triggers.catalog import TriggerCatalog

SDK_TS = Path(__file__).resolve().parents[1] / "sdk_ts"
INSTALL = (
    "scripts/test.sh installs them (`npm ci` in tests/sdk_ts; node and npm from Debian's "
    "`nodejs npm` packages when root)"
)
DRIVE_TIMEOUT_SECONDS = 60
TOKEN = "sdk-ts-token-0123456789"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
BAD_FILTER = "'status == \"SUCCEEDED\"'"


@dataclass(frozen=True)
class DriveRun:
    returncode: int | None
    lines: list[dict[str, Any]]
    stderr: str


async def run_drive(server_url: str, token: str | None = None) -> DriveRun:
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not on PATH; the TypeScript SDK test needs node and npm: {INSTALL}")
    if not (SDK_TS / "node_modules" / "@formance" / "formance-sdk" / "package.json").is_file():
        pytest.fail(f"the TypeScript SDK is not installed in {SDK_TS}/node_modules: {INSTALL}")
    arguments = [server_url] + ([token] if token else [])
    process = await asyncio.create_subprocess_exec(
        node,
        str(SDK_TS / "drive.mjs"),
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), DRIVE_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"drive.mjs did not finish within {DRIVE_TIMEOUT_SECONDS} s")
    lines = [json.loads(line) for line in stdout.decode().splitlines()]
    return DriveRun(process.returncode, lines, stderr.decode())


async def drive(server_url: str, token: str | None = None) -> dict[str, dict[str, Any]]:
    """Each call's line by call name; fails when the SDK could not parse an answer."""
    run = await run_drive(server_url, token)
    unparsed = [line for line in run.lines if not line["ok"] and not line["parsed"]]
    assert (run.returncode, unparsed) == (0, []), (
        f"drive.mjs exited {run.returncode}; answers the SDK could not parse: {unparsed}; "
        f"stderr: {run.stderr}"
    )
    return {line["call"]: line for line in run.lines}


def parsed(calls: dict[str, dict[str, Any]], name: str) -> Any:
    line = calls[name]
    assert line["ok"], line
    return line["result"]


def sdk_error(calls: dict[str, dict[str, Any]], name: str) -> tuple[str, int, str, str]:
    """The SDK's error class, the status, errorCode and errorMessage."""
    line = calls[name]
    assert not line["ok"], line
    return line["error"], line["status"], line["errorCode"], line["errorMessage"]


async def seed(catalog: TriggerCatalog, store: Store) -> str:
    """What drive.mjs expects: a YAML trigger, and a trigger with two occurrences."""
    yaml_definition = {"name": "from-yaml", "event": "SAVED_PAYMENT", "workflowID": "wf"}
    await catalog.reconcile_yaml([parse_definition(yaml_definition)])
    seeded = await catalog.create(parse_definition({**TRIGGER, "name": "seeded with occurrences"}))
    await record_outcomes(store, seeded.id)
    return seeded.id


@pytest.mark.parametrize("token", [None, TOKEN], ids=["no-auth", "bearer-token"])
async def test_typescript_sdk_parses_every_trigger_answer(
    catalog: TriggerCatalog, store: Store, token: str | None
) -> None:
    auth = ApiAuth(StaticTokens([(TOKEN, ["orchestration:write"])])) if token else None
    seeded_id = await seed(catalog, store)
    app = create_api(catalog, store, version="9.9.9-test", auth=auth)
    async with serving(app, host="127.0.0.1", port=0) as port:
        calls = await drive(f"http://127.0.0.1:{port}", token)

    created_v1 = parsed(calls, "v1.createTrigger")["data"]
    created_v2 = parsed(calls, "v2.createTrigger")["data"]
    assert created_v1 == {
        "id": created_v1["id"],
        "createdAt": {"$date": created_v1["createdAt"]["$date"]},
        "name": "Large deposit",
        "event": "SAVED_PAYMENT",
        "filter": "event.status == 'SUCCEEDED'",
        "workflowID": "review-deposit",
        "vars": {"id": "event.id"},
    }
    assert created_v2 == {
        **created_v1,
        "id": created_v2["id"],
        "createdAt": created_v2["createdAt"],
        "name": "v2 deposit",
    }
    assert set(created_v2["createdAt"]) == {"$date"}
    assert "data.source" in calls["v1.createTrigger"]["dropped"]
    assert parsed(calls, "v1.readTrigger")["data"] == created_v1
    assert parsed(calls, "v2.readTrigger")["data"] == created_v2
    assert [t["id"] for t in parsed(calls, "v1.listTriggers")["data"]] == [created_v1["id"]]

    first_page = parsed(calls, "v2.listTriggers[page 1]")["cursor"]
    second_page = parsed(calls, "v2.listTriggers[page 2]")["cursor"]
    assert [t["name"] for t in first_page["data"]] == ["other 0", "other 1"]
    assert (first_page["pageSize"], first_page["hasMore"], "next" in first_page) == (2, True, True)
    assert [t["name"] for t in second_page["data"]] == ["other 2"]
    assert (second_page["hasMore"], "previous" in second_page) == (False, True)

    def report(case: str) -> Any:
        assert "data.explain" in calls[f"v2.testTrigger[{case}]"]["dropped"]
        return parsed(calls, f"v2.testTrigger[{case}]")["data"]

    matched = {"filter": {"match": True}, "variables": {"id": {"value": "pay-1"}}}
    assert report("envelope match") == matched
    assert report("payload match") == matched
    other_type = report("envelope other type")
    assert other_type["filter"]["match"] is False
    assert "'COMMITTED_TRANSACTIONS'" in other_type["filter"]["error"]
    assert report("payload no match") == {**matched, "filter": {"match": False}}
    var_error = report("var error")
    assert var_error["filter"] == {"match": True}
    assert list(var_error["variables"]["id"]) == ["error"]
    assert "null" in var_error["variables"]["id"]["error"]

    assert [t["id"] for t in parsed(calls, "v1.listTriggers[seeded]")["data"]] == [seeded_id]
    failed, succeeded = parsed(calls, "v1.listTriggersOccurrences")["data"]
    assert (failed["triggerID"], failed["error"]) == (seeded_id, "HTTP 404: no workflow")
    assert "workflowInstance" not in failed
    assert set(failed["date"]) == {"$date"}
    assert succeeded["workflowInstanceID"] == "instance-1"
    assert succeeded["workflowInstance"] == {
        "id": "instance-1",
        "workflowID": "review-deposit",
        "createdAt": {"$date": "2024-05-01T10:00:00.000Z"},
        "updatedAt": {"$date": "2024-05-01T10:00:01.000Z"},
        "terminated": INSTANCE["terminated"],
    }
    # JavaScript numbers are doubles: 2**70 arrives as its nearest double, and parses.
    assert succeeded["event"]["payload"]["amount"] == float(2**70)
    first_occurrences = parsed(calls, "v2.listTriggersOccurrences[page 1]")["cursor"]
    second_occurrences = parsed(calls, "v2.listTriggersOccurrences[page 2]")["cursor"]
    assert (first_occurrences["pageSize"], first_occurrences["hasMore"]) == (1, True)
    assert first_occurrences["data"] == [failed]
    assert second_occurrences["hasMore"] is False
    assert second_occurrences["data"] == [succeeded]
    assert parsed(calls, "v1.getServerInfoOrchestration") == {"version": "9.9.9-test"}
    assert parsed(calls, "v2.getServerInfo") == {"version": "9.9.9-test"}

    assert calls["v1.deleteTrigger"]["status"] == calls["v2.deleteTrigger"]["status"] == 204
    assert catalog.compiled(created_v1["id"]) is None
    assert catalog.compiled(created_v2["id"]) is None
    assert sdk_error(calls, "v1.readTrigger[deleted]") == (
        "ErrorT",
        404,
        "NOT_FOUND",
        f"trigger {created_v1['id']} not found",
    )
    for unknown in ["readTrigger", "testTrigger", "listTriggersOccurrences"]:
        assert sdk_error(calls, f"v2.{unknown}[unknown]")[:3] == ("V2Error", 404, "NOT_FOUND")
        assert UNKNOWN_ID in sdk_error(calls, f"v2.{unknown}[unknown]")[3]
    for version, error_class in [("v1", "ErrorT"), ("v2", "V2Error")]:
        invalid = sdk_error(calls, f"{version}.createTrigger[bad filter]")
        assert invalid[:3] == (error_class, 400, "VALIDATION")
        assert BAD_FILTER in invalid[3]
        yaml_id = parsed(calls, "v2.listTriggers[from-yaml]")["cursor"]["data"][0]["id"]
        assert yaml_id == yaml_trigger_id("from-yaml")
        conflict = sdk_error(calls, f"{version}.deleteTrigger[yaml]")
        assert conflict[:3] == (error_class, 409, "VALIDATION")
        assert "configuration file" in conflict[3]


async def mismatched_answer(request: Request) -> JSONResponse:
    return JSONResponse({"data": {"id": 7}}, status_code=201)


async def test_an_answer_the_sdk_cannot_parse_fails_the_drive() -> None:
    """The control for the test above: a schema mismatch shows as a failed run."""
    app = Starlette(
        routes=[Route("/{path:path}", mismatched_answer, methods=["GET", "POST", "DELETE"])]
    )
    async with serving(app, host="127.0.0.1", port=0) as port:
        run = await run_drive(f"http://127.0.0.1:{port}")

    assert run.returncode == 1
    first = run.lines[0]
    assert (first["call"], first["error"], first["parsed"]) == (
        "v1.createTrigger",
        "ResponseValidationError",
        False,
    )
    assert json.loads(first["body"]) == {"data": {"id": 7}}
