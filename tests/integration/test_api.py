"""The REST API end to end: the real SQLite store and catalog, uvicorn on a free port, httpx."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from trigger_daemon.adapters.api import create_api, serving
from trigger_daemon.core.occurrences import NewOccurrence, Occurrence, Outcome
from trigger_daemon.core.triggers import Trigger, TriggerSource, parse_definition
from trigger_daemon.errors import StoreError
from trigger_daemon.ports import Store
from trigger_daemon.triggers.catalog import TriggerCatalog

GATEWAY = "/api/orchestration"
TRIGGER_COLLECTIONS = ["/triggers", "/v2/triggers", f"{GATEWAY}/triggers", f"{GATEWAY}/v2/triggers"]
BIG = 2**70
TRIGGER_FIELDS = {"id", "name", "event", "version", "filter", "workflowID", "vars", "createdAt"}


@pytest.fixture
def checks() -> dict[str, bool]:
    return {"store": True, "kafka": True}


@pytest.fixture
async def client(
    catalog: TriggerCatalog, store: Store, checks: dict[str, bool]
) -> AsyncIterator[httpx.AsyncClient]:
    async def readiness() -> dict[str, str | None]:
        return {name: None if ok else f"{name} is down" for name, ok in checks.items()}

    app = create_api(catalog, store, readiness=readiness, version="9.9.9-test")
    async with served(app) as http:
        yield http


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """uvicorn in this test's event loop on a free port, and a client pointed at it."""
    async with (
        serving(app, host="127.0.0.1", port=0) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        yield http


def definition(**fields: Any) -> dict[str, Any]:
    return {"event": "SAVED_PAYMENT", "workflowID": "wf-1", **fields}


async def create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v2/triggers", json=definition(**fields))
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def listed(collection: str, response: httpx.Response) -> list[dict[str, Any]]:
    """The triggers of a v1 (`data`) or v2 (`cursor.data`) list answer."""
    body = response.json()
    data: list[dict[str, Any]] = body["cursor"]["data"] if "/v2/" in collection else body["data"]
    return data


def assert_error(response: httpx.Response, status: int, code: str, *fragments: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errorCode", "errorMessage"}
    assert body["errorCode"] == code
    for fragment in fragments:
        assert fragment in body["errorMessage"]


# Triggers


@pytest.mark.parametrize("collection", TRIGGER_COLLECTIONS)
async def test_trigger_is_created_read_listed_and_deleted(
    client: httpx.AsyncClient, collection: str
) -> None:
    body = definition(name="Deposit", filter="event.status == 'SUCCEEDED'", vars={"id": "event.id"})

    created = await client.post(collection, json=body)

    assert created.status_code == 201, created.text
    trigger = created.json()["data"]
    assert set(trigger) == TRIGGER_FIELDS - {"version"} | {"source"}
    assert trigger["source"] == "api"
    assert trigger["createdAt"].endswith("Z")
    assert datetime.fromisoformat(trigger["createdAt"]).tzinfo is not None
    item = f"{collection}/{trigger['id']}"
    assert (await client.get(item)).json() == {"data": trigger}
    assert listed(collection, await client.get(collection)) == [trigger]
    deleted = await client.delete(item)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(await client.get(item), 404, "NOT_FOUND", trigger["id"])


async def test_version_appears_only_when_set(client: httpx.AsyncClient) -> None:
    trigger = await create(client, version="v2")
    assert trigger["version"] == "v2"
    assert "name" not in trigger
    assert "filter" not in trigger


@pytest.mark.parametrize("collection", ["/triggers", "/v2/triggers"])
async def test_name_search_is_a_case_insensitive_substring(
    client: httpx.AsyncClient, collection: str
) -> None:
    for name in ("Large USD deposit", "small deposit", "refund"):
        await create(client, name=name)

    response = await client.get(collection, params={"name": "DEPOSIT"})

    names = sorted(t["name"] for t in listed(collection, response))
    assert names == ["Large USD deposit", "small deposit"]


async def test_v2_pages_walk_forward_then_back(client: httpx.AsyncClient) -> None:
    ids = [(await create(client, name=f"t{i:02}"))["id"] for i in range(40)]

    pages: list[dict[str, Any]] = []
    response = await client.get("/v2/triggers", params={"pageSize": 15})
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json()["cursor"])
        if not pages[-1]["hasMore"]:
            break
        response = await client.get("/v2/triggers", params={"cursor": pages[-1]["next"]})

    assert [len(p["data"]) for p in pages] == [15, 15, 10]
    assert [t["id"] for p in pages for t in p["data"]] == ids
    assert all(p["pageSize"] == 15 for p in pages)
    assert "previous" not in pages[0]
    assert "next" not in pages[-1]
    back = await client.get("/v2/triggers", params={"cursor": pages[-1]["previous"]})
    assert back.json()["cursor"]["data"] == pages[1]["data"]
    first = await client.get("/v2/triggers", params={"cursor": back.json()["cursor"]["previous"]})
    assert first.json()["cursor"]["data"] == pages[0]["data"]
    assert "previous" not in first.json()["cursor"]
    assert first.json()["cursor"]["next"]


async def test_cursor_carries_the_name_filter(client: httpx.AsyncClient) -> None:
    for i in range(5):
        await create(client, name=f"keep-{i}")
        await create(client, name=f"drop-{i}")

    page = (await client.get("/v2/triggers", params={"name": "keep", "pageSize": 2})).json()
    names = [t["name"] for t in page["cursor"]["data"]]
    while page["cursor"]["hasMore"]:
        # The cursor wins over parameters sent along with it.
        params = {"cursor": page["cursor"]["next"], "name": "drop", "pageSize": 10}
        page = (await client.get("/v2/triggers", params=params)).json()
        assert page["cursor"]["pageSize"] == 2
        names += [t["name"] for t in page["cursor"]["data"]]

    assert names == [f"keep-{i}" for i in range(5)]


BAD_PAGING = [
    {"pageSize": "abc"},
    {"pageSize": "5000"},
    {"pageSize": "0"},
    {"cursor": "not-a-cursor"},
    {"cursor": base64.urlsafe_b64encode(b'{"scope": "triggers"}').decode()},
]


async def test_bad_paging_parameters_are_validation_errors(client: httpx.AsyncClient) -> None:
    for params in BAD_PAGING:
        response = await client.get("/v2/triggers", params=params)
        assert_error(response, 400, "VALIDATION", *params)


async def test_invalid_expressions_are_named_in_the_error(client: httpx.AsyncClient) -> None:
    body = definition(filter="event.status == ", vars={"amount": "to_string(event.amount"})

    response = await client.post("/triggers", json=body)

    assert_error(response, 400, "VALIDATION", "filter", "event.status == ", "vars.amount")
    assert "to_string(event.amount" in response.json()["errorMessage"]


async def test_double_quoted_string_gets_a_pointed_message(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/triggers", json=definition(filter='status == "SUCCEEDED"'))

    assert_error(response, 400, "VALIDATION", "'SUCCEEDED'", "field name in JMESPath")


BAD_BODIES = [
    (b"{not json", "not valid JSON"),
    (b"", "empty"),
    (b"[1, 2]", "mapping"),
    (b'{"event": "X", "workflowID": "w", "x": NaN}', "NaN"),
    (json.dumps({"event": "X"}).encode(), "workflowID: is required"),
    (json.dumps(definition(workflowId="typo")).encode(), "did you mean 'workflowID'"),
    # Hostile bodies: each would have failed later (store, log, recursion) instead of now.
    (b'{"event": "\\ud800", "workflowID": "w"}', "unpaired UTF-16 surrogate"),
    (b'{"event": "a\\u0000b", "workflowID": "w"}', "NUL character"),
    (b'{"event": "E", "workflowID": "w", "x": ' + b"[" * 50_000, "nested deeper than 100"),
    (b'{"event": "E", "workflowID": "w", "n": ' + b"7" * 5000 + b"}", "digits"),
    (b'{"event": "\xff\xfe", "workflowID": "w"}', "not UTF-8"),
]


async def test_bad_create_bodies_are_validation_errors(client: httpx.AsyncClient) -> None:
    for content, fragment in BAD_BODIES:
        response = await client.post("/v2/triggers", content=content)
        assert_error(response, 400, "VALIDATION", fragment)


UNKNOWN_TRIGGER = [
    ("GET", "/triggers/nope"),
    ("DELETE", "/v2/triggers/nope"),
    ("GET", "/triggers/nope/occurrences"),
    ("GET", "/v2/triggers/nope/occurrences"),
    ("POST", "/v2/triggers/nope/test"),
    ("GET", f"{GATEWAY}/v2/triggers/nope"),
]


async def test_unknown_trigger_is_not_found(client: httpx.AsyncClient) -> None:
    for method, path in UNKNOWN_TRIGGER:
        response = await client.request(method, path, json={"type": "T", "payload": {}})
        assert_error(response, 404, "NOT_FOUND", "nope")


async def test_unknown_route_and_method_answer_in_the_error_shape(
    client: httpx.AsyncClient,
) -> None:
    assert_error(await client.get("/v3/triggers"), 404, "NOT_FOUND", "/v3/triggers")
    assert_error(await client.put("/v2/triggers/x"), 405, "VALIDATION", "PUT")


async def test_yaml_trigger_cannot_be_deleted(
    client: httpx.AsyncClient, catalog: TriggerCatalog
) -> None:
    await catalog.reconcile_yaml([parse_definition(definition(name="from-yaml"))])
    [trigger] = (await client.get("/triggers")).json()["data"]
    assert trigger["source"] == "yaml"

    for path in (f"/triggers/{trigger['id']}", f"/v2/triggers/{trigger['id']}"):
        response = await client.delete(path)
        assert_error(response, 409, "VALIDATION", "from-yaml", "configuration file")
    assert (await client.get(f"/triggers/{trigger['id']}")).status_code == 200


# The test endpoint

PAYMENT = {"id": "pay-1", "status": "SUCCEEDED", "amount": BIG}


@pytest.fixture
async def payment_trigger(client: httpx.AsyncClient) -> str:
    trigger = await create(
        client,
        filter="event.status == 'SUCCEEDED'",
        vars={"amount": "event.amount", "missing": "event.nope"},
    )
    return str(trigger["id"])


@pytest.mark.parametrize(
    "body",
    [{"type": "SAVED_PAYMENT", "payload": PAYMENT, "ledger": "main"}, PAYMENT],
    ids=["envelope", "bare-payload"],
)
async def test_test_endpoint_reports_match_and_each_var(
    client: httpx.AsyncClient, payment_trigger: str, body: dict[str, Any]
) -> None:
    response = await client.post(f"/v2/triggers/{payment_trigger}/test", json=body)

    assert response.status_code == 200, response.text
    report = response.json()["data"]
    assert report["filter"] == {"match": True}
    assert report["variables"]["amount"] == {"value": str(BIG)}
    assert set(report["variables"]["missing"]) == {"error"}
    assert "null" in report["variables"]["missing"]["error"]


async def test_test_endpoint_reports_a_non_match_and_a_filter_error(
    client: httpx.AsyncClient, payment_trigger: str
) -> None:
    failing = await create(client, filter="length(event.amount) > `0`")

    other = await client.post(f"/v2/triggers/{payment_trigger}/test", json={"status": "FAILED"})
    broken = await client.post(f"{GATEWAY}/v2/triggers/{failing['id']}/test", json=PAYMENT)
    wrong_type = {"type": "SAVED_ACCOUNT", "payload": PAYMENT}
    mistyped = await client.post(f"/v2/triggers/{payment_trigger}/test", json=wrong_type)

    assert other.json()["data"]["filter"] == {"match": False}
    assert broken.json()["data"]["filter"]["match"] is False
    assert "length" in broken.json()["data"]["filter"]["error"]
    assert "SAVED_ACCOUNT" in mistyped.json()["data"]["filter"]["error"]


async def test_test_endpoint_compiles_a_trigger_not_yet_in_the_catalog(
    client: httpx.AsyncClient, store: Store, catalog: TriggerCatalog
) -> None:
    trigger = Trigger.model_validate(
        {**definition(filter="event.ok"), "id": "t-elsewhere", "createdAt": datetime.now(UTC)}
    )
    await store.create_trigger(trigger)  # as another replica would: this catalog never saw it
    assert catalog.compiled("t-elsewhere") is None

    response = await client.post("/v2/triggers/t-elsewhere/test", json={"ok": True})

    assert response.json()["data"]["filter"] == {"match": True}


async def test_test_endpoint_refuses_an_unusable_event(
    client: httpx.AsyncClient, payment_trigger: str
) -> None:
    response = await client.post(f"/v2/triggers/{payment_trigger}/test", json=[1, 2])
    assert_error(response, 400, "VALIDATION", "payload")


# Occurrences


async def record(store: Store, trigger_id: str, count: int) -> list[Occurrence]:
    """`count` occurrences, alternately succeeded and failed, oldest first."""
    pending = await store.begin_occurrences(
        [
            NewOccurrence(
                trigger_id=trigger_id,
                event_id=f"SAVED_PAYMENT:k{i}",
                event={"type": "SAVED_PAYMENT", "payload": {**PAYMENT, "n": i}},
                date=datetime.now(UTC),
            )
            for i in range(count)
        ]
    )
    return [
        await store.finish_occurrence(occurrence, outcome(i))
        for i, occurrence in enumerate(pending)
    ]


def outcome(i: int) -> Outcome:
    if i % 2:
        return Outcome.failed("HTTP 400: workflow not found", attempts=1, vars={"n": str(i)})
    instance = {
        "id": f"inst-{i}",
        "workflowID": "wf-1",
        "createdAt": "2024-05-01T10:00:00Z",
        "updatedAt": "2024-05-01T10:00:00Z",
        "terminated": False,
    }
    return Outcome.succeeded(instance, attempts=2, vars={"n": str(i)})


async def test_v1_occurrences_are_newest_first_with_big_integers_exact(
    client: httpx.AsyncClient, store: Store
) -> None:
    trigger = await create(client)
    recorded = await record(store, trigger["id"], 3)

    response = await client.get(f"/triggers/{trigger['id']}/occurrences")

    assert response.status_code == 200, response.text
    assert f'"amount":{BIG}' in response.text  # exact digits, not a float
    data = response.json()["data"]
    assert [o["id"] for o in data] == [o.id for o in reversed(recorded)]
    succeeded, failed = data[2], data[1]
    assert succeeded["status"] == "succeeded"
    assert succeeded["workflowInstanceID"] == "inst-0"
    assert succeeded["workflowInstance"]["workflowID"] == "wf-1"
    assert succeeded["attempts"] == 2
    assert succeeded["vars"] == {"n": "0"}
    assert succeeded["event"]["payload"]["amount"] == BIG
    assert succeeded["eventID"] == "SAVED_PAYMENT:k0"
    assert succeeded["triggerID"] == trigger["id"]
    assert succeeded["date"].endswith("Z")
    assert "error" not in succeeded
    assert failed["status"] == "failed"
    assert failed["error"] == "HTTP 400: workflow not found"
    assert "workflowInstance" not in failed
    assert "workflowInstanceID" not in failed


async def test_v2_occurrences_page_older_then_newer(
    client: httpx.AsyncClient, store: Store
) -> None:
    trigger = await create(client)
    newest_first = [o.id for o in reversed(await record(store, trigger["id"], 5))]
    path = f"{GATEWAY}/v2/triggers/{trigger['id']}/occurrences"

    def ids(page: dict[str, Any]) -> list[str]:
        return [o["id"] for o in page["data"]]

    first = (await client.get(path, params={"pageSize": 2})).json()["cursor"]
    second = (await client.get(path, params={"cursor": first["next"]})).json()["cursor"]
    third = (await client.get(path, params={"cursor": second["next"]})).json()["cursor"]
    back = (await client.get(path, params={"cursor": third["previous"]})).json()["cursor"]

    assert [ids(first), ids(second), ids(third)] == [
        newest_first[0:2],
        newest_first[2:4],
        newest_first[4:],
    ]
    assert (first["hasMore"], second["hasMore"], third["hasMore"]) == (True, True, False)
    assert ids(back) == newest_first[2:4]
    other = await create(client)
    elsewhere = await client.get(
        f"/v2/triggers/{other['id']}/occurrences", params={"cursor": first["next"]}
    )
    assert_error(elsewhere, 400, "VALIDATION", "cursor")


# Failures and operator routes


class FailingStore:
    """The real store, except that listing triggers fails as configured."""

    def __init__(self, store: Store, error: Exception) -> None:
        self._store = store
        self._error = error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def list_triggers(self, *, name: str | None = None) -> list[Trigger]:
        raise self._error


@pytest.mark.parametrize(
    "error",
    [
        StoreError("connect to postgresql://app:s3cret@db/x failed", retriable=True),
        RuntimeError("boom with s3cret"),
    ],
)
async def test_failures_are_internal_and_reveal_nothing(
    store: Store, catalog: TriggerCatalog, error: Exception
) -> None:
    app = create_api(catalog, FailingStore(store, error), version="1")  # type: ignore[arg-type]
    async with served(app) as http:
        response = await http.get("/v2/triggers")
        assert (await http.get("/triggers/x")).status_code == 404  # the rest still works

    assert_error(response, 500, "INTERNAL")
    assert "s3cret" not in response.text
    assert "Traceback" not in response.text


async def test_info_answers_the_version(client: httpx.AsyncClient) -> None:
    for path in ("/_info", "/v2/_info", f"{GATEWAY}/_info", f"{GATEWAY}/v2/_info"):
        assert (await client.get(path)).json() == {"version": "9.9.9-test"}


async def test_health_readiness_and_metrics(
    client: httpx.AsyncClient, checks: dict[str, bool]
) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"store": True, "kafka": True}}

    checks["kafka"] = False
    unready = await client.get("/readyz")
    assert unready.status_code == 503
    assert unready.json() == {
        "status": "unavailable",
        "checks": {"store": True, "kafka": False},
        "reasons": {"kafka": "kafka is down"},
    }

    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# HELP" in metrics.text
    assert (await client.get(f"{GATEWAY}/healthz")).status_code == 404


async def test_openapi_documents_each_route_once(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()

    paths = document["paths"]
    assert "/v2/triggers/{triggerID}/test" in paths
    assert not any(path.startswith(GATEWAY) for path in paths)
    create_body = paths["/v2/triggers"]["post"]["requestBody"]["content"]["application/json"]
    assert "workflowID" in create_body["schema"]["properties"]
    operation_ids = {op["operationId"] for methods in paths.values() for op in methods.values()}
    assert {"v2ListTriggers", "listTriggersOccurrences", "testTrigger"} <= operation_ids
    assert TriggerSource.YAML.value in json.dumps(document["components"]["schemas"]["Trigger"])


async def test_a_triggers_retry_policy_round_trips_as_an_extension_field(
    client: httpx.AsyncClient,
) -> None:
    created = await create(client, retry={"maxAttempts": 3, "maxBackoffSeconds": 2.5})
    assert created["retry"] == {"maxAttempts": 3, "maxBackoffSeconds": 2.5}
    read = (await client.get(f"/v2/triggers/{created['id']}")).json()["data"]
    assert read["retry"] == created["retry"]
    without = await create(client, name="plain")
    assert "retry" not in without


async def test_flow_control_round_trips_as_extension_fields(client: httpx.AsyncClient) -> None:
    limits = {"rateLimit": {"requestsPerUnit": 50, "unit": "minute"}, "maxConcurrency": 4}
    created = await create(client, **limits)
    assert created["rateLimit"] == {"requestsPerUnit": 50, "unit": "minute", "burst": 1}
    assert created["maxConcurrency"] == 4
    read = (await client.get(f"{GATEWAY}/v2/triggers/{created['id']}")).json()["data"]
    assert (read["rateLimit"], read["maxConcurrency"]) == (created["rateLimit"], 4)
    refused = await client.post(
        "/v2/triggers", json=definition(rateLimit={"requestsPerUnit": 5, "unit": "week"})
    )
    assert_error(refused, 400, "VALIDATION", "rateLimit.unit")
    without = await create(client, name="unlimited")
    assert "rateLimit" not in without
    assert "maxConcurrency" not in without
