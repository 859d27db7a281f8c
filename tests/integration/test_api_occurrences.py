"""The occurrence filters and `GET /v2/occurrences` over real HTTP, on the real SQLite store:
filters, paging with a filtered cursor, refusals naming the parameter, scopes, OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from trigger_daemon.adapters.api import ApiAuth, create_api
from trigger_daemon.core.occurrences import NewOccurrence, Occurrence, Outcome
from trigger_daemon.ports import Store
from trigger_daemon.triggers.catalog import TriggerCatalog

from .test_api import GATEWAY, assert_error, create, served
from .test_api_auth import STATIC, expected_status, headers, static_tokens

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
INSTANCE = {"id": "inst", "workflowID": "wf-1", "terminated": False}


@pytest.fixture
async def client(catalog: TriggerCatalog, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    async with served(create_api(catalog, store, version="9.9.9-test")) as http:
        yield http


async def record(
    store: Store, trigger_id: str, event: str, minute: int, outcome: Outcome | None
) -> Occurrence:
    """One occurrence of `event`, recorded at T0 + `minute`, finished with `outcome` (None:
    left pending)."""
    [begun] = await store.begin_occurrences(
        [
            NewOccurrence(
                trigger_id=trigger_id,
                event_id=event,
                event={"type": "SAVED_PAYMENT", "payload": {"id": event}},
                date=T0 + timedelta(minutes=minute),
            )
        ]
    )
    return begun if outcome is None else await store.finish_occurrence(begun, outcome)


def succeeded() -> Outcome:
    return Outcome.succeeded(INSTANCE, attempts=1, vars={})


def failed() -> Outcome:
    return Outcome.failed("HTTP 400: no such workflow", attempts=1)


async def history(client: httpx.AsyncClient, store: Store) -> tuple[str, list[Occurrence]]:
    """Eight occurrences of one trigger, one a minute: succeeded, failed, pending in turn."""
    trigger = (await create(client))["id"]
    outcomes = [succeeded, failed, lambda: None]
    recorded = [
        await record(store, trigger, f"SAVED_PAYMENT:p{n}", n, outcomes[n % 3]()) for n in range(8)
    ]
    return trigger, recorded


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [o["id"] for o in answer.json()["cursor"]["data"]]


def newest_first(occurrences: list[Occurrence]) -> list[str]:
    return [o.id for o in sorted(occurrences, key=lambda o: o.seq, reverse=True)]


@pytest.mark.parametrize("prefix", ["", GATEWAY])
async def test_a_triggers_occurrences_filter_by_status_and_time(
    client: httpx.AsyncClient, store: Store, prefix: str
) -> None:
    trigger, recorded = await history(client, store)
    path = f"{prefix}/v2/triggers/{trigger}/occurrences"

    by_status = await client.get(path, params={"status": "failed,pending"})
    window = await client.get(
        path, params={"since": "2024-05-01T12:02:00Z", "until": "2024-05-01T14:05:00+02:00"}
    )
    both = await client.get(path, params={"status": "succeeded", "since": "2024-05-01T12:01:00Z"})

    assert ids(by_status) == newest_first([o for o in recorded if o.status != "succeeded"])
    assert ids(window) == newest_first(recorded[2:5])  # since included, until excluded
    assert ids(both) == newest_first([recorded[3], recorded[6]])


async def test_a_filtered_cursor_keeps_its_filters_and_ignores_new_ones(
    client: httpx.AsyncClient, store: Store
) -> None:
    trigger, recorded = await history(client, store)
    path = f"/v2/triggers/{trigger}/occurrences"
    wanted = newest_first([o for o in recorded if o.status != "failed"])

    first = (
        await client.get(
            path,
            params={"status": "succeeded,pending", "since": "2024-05-01T12:00:00Z", "pageSize": 2},
        )
    ).json()["cursor"]
    second = await client.get(path, params={"cursor": first["next"], "status": "failed"})
    third = await client.get(path, params={"cursor": second.json()["cursor"]["next"]})
    back = await client.get(path, params={"cursor": third.json()["cursor"]["previous"]})

    assert len(wanted) == 5
    assert [o["id"] for o in first["data"]] == wanted[0:2]
    assert ids(second) == wanted[2:4]
    assert ids(third) == wanted[4:]
    assert third.json()["cursor"]["hasMore"] is False
    assert ids(back) == wanted[2:4]


async def test_which_triggers_an_event_fired_and_how_each_ended_is_one_call(
    client: httpx.AsyncClient, store: Store
) -> None:
    deposit, review, audit, idle = [(await create(client))["id"] for _ in range(4)]
    event = "SAVED_PAYMENT:pay-42"
    fired = [
        await record(store, deposit, event, 0, succeeded()),
        await record(store, review, event, 0, failed()),
        await record(store, audit, event, 1, None),
    ]
    await record(store, deposit, "SAVED_PAYMENT:pay-43", 2, succeeded())

    answer = await client.get("/v2/occurrences", params={"eventID": event})

    assert ids(answer) == newest_first(fired)
    ended = {(o["triggerID"], o["status"]) for o in answer.json()["cursor"]["data"]}
    assert ended == {(deposit, "succeeded"), (review, "failed"), (audit, "pending")}
    assert idle not in {trigger for trigger, _ in ended}
    only_failed = await client.get(
        f"{GATEWAY}/v2/occurrences", params={"eventID": event, "status": "failed"}
    )
    assert ids(only_failed) == [fired[1].id]


async def test_occurrences_across_triggers_filter_and_page_newest_first(
    client: httpx.AsyncClient, store: Store
) -> None:
    first_trigger, first = await history(client, store)
    second_trigger, second = await history(client, store)
    everything = newest_first(first + second)

    pages = []
    answer = await client.get("/v2/occurrences", params={"pageSize": 5})
    while True:
        pages.append(ids(answer))
        cursor = answer.json()["cursor"]
        if not cursor["hasMore"]:
            break
        answer = await client.get("/v2/occurrences", params={"cursor": cursor["next"]})
    by_trigger = await client.get("/v2/occurrences", params={"triggerID": second_trigger})
    failed_ones = await client.get("/v2/occurrences", params={"status": "failed"})
    late = await client.get("/v2/occurrences", params={"since": "2024-05-01T12:06:00Z"})

    assert [i for page in pages for i in page] == everything
    assert [len(page) for page in pages] == [5, 5, 5, 1]
    assert ids(by_trigger) == newest_first(second)
    assert ids(failed_ones) == newest_first([o for o in first + second if o.status == "failed"])
    # Ordered by date, then insertion: minute 7 of both triggers, then minute 6 of both.
    assert ids(late) == [second[7].id, first[7].id, second[6].id, first[6].id]
    assert first_trigger != second_trigger


async def test_an_unknown_or_deleted_trigger_gives_an_empty_page_across_triggers(
    client: httpx.AsyncClient, store: Store
) -> None:
    trigger, recorded = await history(client, store)
    assert (await client.delete(f"/v2/triggers/{trigger}")).status_code == 204

    unknown = await client.get("/v2/occurrences", params={"triggerID": "nobody"})
    deleted = await client.get("/v2/occurrences", params={"triggerID": trigger})

    assert unknown.json() == {"cursor": {"pageSize": 15, "hasMore": False, "data": []}}
    assert ids(deleted) == newest_first(recorded)  # its occurrences outlive it
    assert_error(
        await client.get(f"/v2/triggers/{trigger}/occurrences", params={"status": "failed"}),
        404,
        "NOT_FOUND",
        trigger,
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "done"}, "status: 'done' is not one of pending, succeeded, failed"),
        ({"status": "failed,"}, "status: '' is not one of pending, succeeded, failed"),
        ({"since": "yesterday"}, "since: not an RFC 3339 time with a time zone"),
        ({"until": "2024-05-01T12:00:00"}, "until: not an RFC 3339 time with a time zone"),
        (
            {"since": "2024-05-01T12:00:00Z", "until": "2024-05-01T11:00:00Z"},
            "until: must be later than since",
        ),
        ({"eventID": "e" * 129}, "eventID"),
        ({"triggerID": "t" * 65}, "triggerID"),
    ],
)
async def test_bad_filters_are_validation_errors_naming_the_parameter(
    client: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    trigger = (await create(client))["id"]
    answer = await client.get("/v2/occurrences", params=params)
    assert_error(answer, 400, "VALIDATION", message)
    if "eventID" not in params and "triggerID" not in params:
        per_trigger = await client.get(f"/v2/triggers/{trigger}/occurrences", params=params)
        assert_error(per_trigger, 400, "VALIDATION", message)


async def test_status_is_one_parameter_and_a_plus_must_be_encoded(
    client: httpx.AsyncClient,
) -> None:
    repeated = await client.get("/v2/occurrences?status=failed&status=pending")
    bare_plus = await client.get("/v2/occurrences?since=2024-05-01T14:00:00+02:00")
    encoded = await client.get("/v2/occurrences?since=2024-05-01T14:00:00%2B02:00")

    assert_error(repeated, 400, "VALIDATION", "'status' is given more than once")
    assert_error(bare_plus, 400, "VALIDATION", "since:", "%2B")
    assert encoded.status_code == 200, encoded.text


async def test_a_cursor_of_one_listing_is_refused_by_another(
    client: httpx.AsyncClient, store: Store
) -> None:
    trigger, _ = await history(client, store)
    across = (await client.get("/v2/occurrences", params={"pageSize": 2})).json()["cursor"]
    mine = (await client.get(f"/v2/triggers/{trigger}/occurrences", params={"pageSize": 2})).json()[
        "cursor"
    ]

    assert_error(
        await client.get(f"/v2/triggers/{trigger}/occurrences", params={"cursor": across["next"]}),
        400,
        "VALIDATION",
        "cursor",
    )
    assert_error(
        await client.get("/v2/occurrences", params={"cursor": mine["next"]}),
        400,
        "VALIDATION",
        "cursor",
    )


async def test_openapi_documents_the_filters_and_the_route(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    def parameters(path: str) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in paths[path]["get"]["parameters"]}

    across = paths["/v2/occurrences"]["get"]
    assert across["operationId"] == "v2ListOccurrences"
    assert "empty page" in across["description"]
    assert set(parameters("/v2/occurrences")) == {
        "eventID",
        "triggerID",
        "status",
        "since",
        "until",
        "pageSize",
        "cursor",
    }
    per_trigger = parameters("/v2/triggers/{triggerID}/occurrences")
    assert {"status", "since", "until", "pageSize", "cursor"} <= set(per_trigger)
    assert "pending, succeeded, failed" in per_trigger["status"]["description"]
    assert "time zone" in per_trigger["since"]["description"]
    assert "refused" in paths["/v2/triggers/{triggerID}/occurrences"]["get"]["description"]
    assert "status" not in parameters("/triggers/{triggerID}/occurrences")  # v1 unchanged


@pytest.mark.parametrize("path", ["/v2/occurrences", f"{GATEWAY}/v2/occurrences"])
async def test_listing_occurrences_needs_the_read_scope(
    catalog: TriggerCatalog, store: Store, path: str
) -> None:
    app = create_api(catalog, store, version="9.9.9-test", auth=ApiAuth(static_tokens()))
    async with served(app) as http:
        callers = {**STATIC, "missing": None, "wrong": "not-a-valid-token-at-all"}
        for who, token in callers.items():
            answer = await http.get(path, params={"status": "failed"}, headers=headers(token))
            assert answer.status_code == expected_status("GET", 200, who), (who, answer.text)
