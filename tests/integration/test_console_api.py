"""The console's server side without a browser: the shell and its headers, the status and
occurrence-count routes, and the count query on SQLite, PostgreSQL and the in-memory fake."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from trigger_daemon.adapters.api import ApiAuth, StaticTokens, create_api, serving
from trigger_daemon.adapters.api.status import Status, StatusHandlers
from trigger_daemon.adapters.store import SqlStore, open_store
from trigger_daemon.core.occurrences import NewOccurrence, OccurrenceStatus, Outcome
from trigger_daemon.devtools.postgres import PostgresCluster
from trigger_daemon.testing import InMemoryStore
from trigger_daemon.triggers.catalog import TriggerCatalog

# Both stores are a Store and an OccurrenceCounter.
Counted = SqlStore | InMemoryStore

GATEWAY = "/api/orchestration"
TOKEN = "console-api-token-0123456789"
NOW = datetime.now(UTC)
STATUS = Status(
    events_per_second=12.5,
    matches_per_second=2.0,
    window_seconds=60.0,
    in_flight=3,
    consumer_lag=None,
    circuit="open",
    circuit_reason="calls fail: runWorkflow w: HTTP 503",
)


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
async def counted_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Counted]:
    if request.param == "memory":
        yield InMemoryStore()
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        url = cluster.new_database()
    opened = await open_store(url)
    yield opened
    await opened.close()


async def record(
    store: Counted, trigger_id: str, hours_ago: float, outcome: Outcome | None
) -> None:
    key = f"{trigger_id}:{hours_ago}:{outcome.status if outcome else 'pending'}"
    new = NewOccurrence(trigger_id, key, {"type": "E"}, NOW - timedelta(hours=hours_ago))
    [begun] = await store.begin_occurrences([new])
    if outcome is not None:
        await store.finish_occurrence(begun, outcome)


@asynccontextmanager
async def served(store: Counted, auth: ApiAuth | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """The API over `store`, its status fixed to STATUS, on a free port; a client of it."""
    status = StatusHandlers(lambda: STATUS, store)
    app = create_api(TriggerCatalog(store), store, version="test", auth=auth, status=status)
    async with (
        serving(app, host="127.0.0.1", port=0) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        yield client


async def test_occurrence_counts_group_the_last_day_by_trigger_and_status(
    counted_store: Counted,
) -> None:
    succeeded = Outcome.succeeded({"id": "i"}, 1, {})
    failed = Outcome.failed("boom", 1)
    await record(counted_store, "a", 1, succeeded)
    await record(counted_store, "a", 2, succeeded)
    await record(counted_store, "a", 3, failed)
    await record(counted_store, "a", 30, failed)  # older than a day
    await record(counted_store, "b", 0.5, None)
    await record(counted_store, "c", 48, succeeded)

    assert await counted_store.count_occurrences(NOW - timedelta(hours=24)) == {
        "a": {OccurrenceStatus.SUCCEEDED: 2, OccurrenceStatus.FAILED: 1},
        "b": {OccurrenceStatus.PENDING: 1},
    }
    async with served(counted_store) as api:
        answer = await api.get(f"{GATEWAY}/v2/occurrence-counts")
        week = await api.get("/v2/occurrence-counts", params={"since": "7d"})
        bad = await api.get("/v2/occurrence-counts", params={"since": "yesterday"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["triggers"] == [
        {"triggerID": "a", "pending": 0, "succeeded": 2, "failed": 1},
        {"triggerID": "b", "pending": 1, "succeeded": 0, "failed": 0},
    ]
    since = datetime.fromisoformat(answer.json()["data"]["since"])
    assert abs(since - (datetime.now(UTC) - timedelta(hours=24))) < timedelta(minutes=1)
    assert [row["triggerID"] for row in week.json()["data"]["triggers"]] == ["a", "b", "c"]
    assert bad.status_code == 400
    assert bad.json()["errorCode"] == "VALIDATION"
    assert "since:" in bad.json()["errorMessage"]


async def test_the_status_route_answers_what_the_daemon_computes_and_is_documented() -> None:
    async with served(InMemoryStore()) as api:
        answer = await api.get("/v2/status")
        through_gateway = await api.get(f"{GATEWAY}/v2/status")
        document = (await api.get("/openapi.json")).json()
    assert answer.status_code == 200, answer.text
    assert answer.json() == through_gateway.json()
    assert answer.json()["data"] == {
        "eventsPerSecond": 12.5,
        "matchesPerSecond": 2.0,
        "windowSeconds": 60.0,
        "inFlight": 3,
        "circuit": "open",
        "circuitReason": "calls fail: runWorkflow w: HTTP 503",
    }
    operations = {
        path: operation["operationId"]
        for path, methods in document["paths"].items()
        for operation in methods.values()
    }
    assert operations["/v2/status"] == "v2GetStatus"
    assert operations["/v2/occurrence-counts"] == "v2CountOccurrences"
    assert not any(path.startswith(("/ui", f"{GATEWAY}/")) for path in operations)


@pytest.mark.parametrize("prefix", ["", GATEWAY])
async def test_the_shell_is_served_with_a_strict_policy_and_no_inline_script(prefix: str) -> None:
    async with served(InMemoryStore()) as api:
        redirect = await api.get(f"{prefix}/ui")
        page = await api.get(f"{prefix}/ui/")
        html = page.text
        scripts = re.findall(r'<script[^>]*src="([^"]+)"', html)
        assets = {name: await api.get(f"{prefix}/ui/{name}") for name in scripts}
        # Every module the entry point imports, transitively, is served beside it.
        pending = list(scripts)
        while pending:
            text = assets[pending.pop()].text
            for imported in re.findall(r"from '\./([\w-]+\.js)'", text):
                if imported not in assets:
                    assets[imported] = await api.get(f"{prefix}/ui/{imported}")
                    pending.append(imported)
        missing = await api.get(f"{prefix}/ui/secrets.txt")

    assert redirect.status_code == 307
    assert redirect.headers["location"] == f"{prefix}/ui/"
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []  # no inline script
    assert re.findall(r"<[^>]*\s(?:on\w+|style)=", html) == []  # no inline handler or style
    assert scripts == ["console.js"]
    assert len(assets) >= 8
    for name, asset in assets.items():
        assert asset.status_code == 200, name
        assert asset.headers["content-type"] == "text/javascript; charset=utf-8"
        assert asset.headers["content-security-policy"] == policy
        assert (
            re.findall(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", asset.text) == []
        )
    assert missing.status_code == 404
    assert missing.json()["errorCode"] == "NOT_FOUND"


async def test_with_token_auth_the_shell_is_public_and_every_datum_needs_the_token() -> None:
    auth = ApiAuth(StaticTokens([(TOKEN, ["orchestration:read"])]))
    async with served(InMemoryStore(), auth) as api:
        shell = await api.get("/ui/console.js")
        refused = await api.get("/v2/status")
        counts = await api.get("/v2/occurrence-counts")
        allowed = await api.get("/v2/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert shell.status_code == 200
    assert refused.status_code == counts.status_code == 401
    assert refused.json()["errorCode"] == "VALIDATION"
    assert allowed.status_code == 200
