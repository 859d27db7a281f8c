"""Testing triggers over HTTP: the explanation, unsaved triggers, and the same validation as
create. The real SQLite store and catalog, uvicorn on a free port, httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.integration.test_api import GATEWAY, assert_error, create, served
from trigger_daemon.adapters.api import create_api
from trigger_daemon.ports import Store
from trigger_daemon.triggers.catalog import TriggerCatalog

FILTER = "event.status == 'SUCCEEDED' && event.amount > `100`"
UNSAVED = {
    "event": "SAVED_PAYMENT",
    "version": "v3",
    "workflowID": "wf-1",
    "filter": FILTER,
    "vars": {"amount": "event.amount", "ref": "event.reference"},
}


@pytest.fixture
async def client(catalog: TriggerCatalog, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    async with served(create_api(catalog, store, version="9.9.9-test")) as http:
        yield http


async def answer_of(client: httpx.AsyncClient, path: str, body: Any) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()["data"]
    return answer


@pytest.mark.parametrize("prefix", ["", GATEWAY])
async def test_a_saved_trigger_is_explained_clause_by_clause(
    client: httpx.AsyncClient, prefix: str
) -> None:
    trigger = await create(client, filter=FILTER, vars={"amount": "event.amount"})
    answer = await answer_of(
        client, f"{prefix}/v2/triggers/{trigger['id']}/test", {"status": "SUCCEEDED", "amount": 7}
    )
    assert answer["filter"] == {"match": False}
    assert answer["variables"] == {"amount": {"value": "7"}}
    explain = answer["explain"]
    assert explain["eventChecked"] is False
    assert explain["type"] == {
        "expected": "SAVED_PAYMENT",
        "actual": "SAVED_PAYMENT",
        "matches": True,
    }
    assert explain["filter"] == {
        "result": {"expression": FILTER, "value": False, "truthy": False},
        "operator": "&&",
        "clauses": [
            {"expression": "event.status == 'SUCCEEDED'", "value": True, "truthy": True},
            {"expression": "event.amount > `100`", "value": False, "truthy": False},
        ],
    }
    assert explain["variables"] == {"amount": {"expression": "event.amount", "value": "7"}}
    assert "clause 2 of 2" in explain["decision"]


async def test_a_null_value_is_written_as_null(client: httpx.AsyncClient) -> None:
    trigger = await create(client, filter="event.amount > `1`")
    answer = await answer_of(client, f"/v2/triggers/{trigger['id']}/test", {"amount": "12"})
    assert answer["explain"]["filter"]["result"] == {
        "expression": "event.amount > `1`",
        "value": None,
        "truthy": False,
    }


async def test_an_unsaved_trigger_is_tested_like_a_saved_one(client: httpx.AsyncClient) -> None:
    event = {"type": "SAVED_PAYMENT", "payload": {"status": "SUCCEEDED", "amount": 500}}
    answer = await answer_of(
        client, f"{GATEWAY}/v2/triggers/test", {"trigger": UNSAVED, "event": event}
    )
    # A full envelope is checked on version: this one carries none, the trigger wants v3.
    assert answer["filter"] == {"match": False, "error": "event version None is not 'v3'"}
    assert answer["explain"]["version"] == {"expected": "v3", "matches": False}
    assert answer["explain"]["filter"]["result"]["value"] is True
    assert set(answer["variables"]["ref"]) == {"error"}

    answer = await answer_of(
        client, "/v2/triggers/test", {"trigger": UNSAVED, "event": event["payload"]}
    )
    assert answer["filter"] == {"match": True}
    assert answer["explain"]["decision"].startswith("matches (the filter is true), but var 'ref'")
    assert (await client.get("/v2/triggers")).json()["cursor"]["data"] == []  # nothing saved


async def test_an_invalid_unsaved_trigger_is_refused_as_create_refuses_it(
    client: httpx.AsyncClient,
) -> None:
    bad = {**UNSAVED, "filter": "event.amount >"}
    created = await client.post("/v2/triggers", json=bad)
    tested_ = await client.post("/v2/triggers/test", json={"trigger": bad, "event": {}})
    assert_error(created, 400, "VALIDATION", "filter 'event.amount >'")
    assert_error(tested_, 400, "VALIDATION")
    assert tested_.json()["errorMessage"] == created.json()["errorMessage"]


@pytest.mark.parametrize(
    "body",
    [{"trigger": UNSAVED}, {"event": {}}, {"trigger": UNSAVED, "event": {}, "extra": 1}, [1]],
    ids=["no-event", "no-trigger", "extra-key", "not-an-object"],
)
async def test_an_unsaved_test_needs_exactly_a_trigger_and_an_event(
    client: httpx.AsyncClient, body: Any
) -> None:
    response = await client.post("/v2/triggers/test", json=body)
    assert_error(response, 400, "VALIDATION", '{"trigger"')


async def test_openapi_documents_the_unsaved_test_and_the_explanation(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    route = document["paths"]["/v2/triggers/test"]["post"]
    assert route["operationId"] == "v2TestUnsavedTrigger"
    body = route["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["trigger", "event"]
    assert "workflowID" in body["properties"]["trigger"]["properties"]
    assert "TriggerTestExplanation" in document["components"]["schemas"]
