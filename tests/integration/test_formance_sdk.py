"""The official Formance Python SDK, unchanged, against the daemon's API: every answer must parse
with the SDK's own models (it raises on a schema mismatch) and errors must surface as its errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from formance_sdk_python import SDK
from formance_sdk_python.models import orchestration
from formance_sdk_python.models.shared import Security

from tests.integration.identity import AUDIENCE, identity_provider
from trigger_daemon.adapters.api import (
    ApiAuth,
    JwksCache,
    JwtAuthenticator,
    StaticTokens,
    create_api,
    serving,
)
from trigger_daemon.core.occurrences import NewOccurrence, Outcome
from trigger_daemon.core.triggers import parse_definition, yaml_trigger_id
from trigger_daemon.ports import Store
from trigger_daemon.triggers.catalog import TriggerCatalog

INSTANCE = {
    "id": "instance-1",
    "workflowID": "review-deposit",
    "createdAt": "2024-05-01T10:00:00Z",
    "updatedAt": "2024-05-01T10:00:01Z",
    "terminated": False,
}
PAYMENT = {"id": "pay-1", "status": "SUCCEEDED", "amount": 2**70}


@pytest.fixture
async def sdk(catalog: TriggerCatalog, store: Store) -> AsyncIterator[SDK]:
    """The SDK on clients this test owns and closes; no security: the API needs none."""
    app = create_api(catalog, store, version="9.9.9-test")
    async with (
        serving(app, host="127.0.0.1", port=0) as port,
        httpx.AsyncClient() as async_client,
    ):
        with httpx.Client() as client:
            yield SDK(
                server_url=f"http://127.0.0.1:{port}", client=client, async_client=async_client
            )


async def record_outcomes(store: Store, trigger_id: str, start: int = 0) -> None:
    """One succeeded occurrence with a Formance-shaped workflow instance, one failed (events
    k`start` and k`start + 1`)."""
    pending = await store.begin_occurrences(
        [
            NewOccurrence(
                trigger_id=trigger_id,
                event_id=f"SAVED_PAYMENT:k{i}",
                event={"type": "SAVED_PAYMENT", "payload": PAYMENT},
                date=datetime.now(UTC),
            )
            for i in range(start, start + 2)
        ]
    )
    await store.finish_occurrence(
        pending[0], Outcome.succeeded(INSTANCE, attempts=1, vars={"id": "pay-1"})
    )
    await store.finish_occurrence(pending[1], Outcome.failed("HTTP 404: no workflow", 1))


TRIGGER = {
    "name": "Large deposit",
    "event": "SAVED_PAYMENT",
    "filter": "event.status == 'SUCCEEDED'",
    "workflow_id": "review-deposit",
    "vars": {"id": "event.id"},
}


async def test_v1_trigger_lifecycle(sdk: SDK, store: Store) -> None:
    v1 = sdk.orchestration.v1

    created = (await v1.create_trigger_async(request=TRIGGER)).create_trigger_response
    assert created is not None
    trigger = created.data
    listed = (await v1.list_triggers_async(request={"name": "large"})).list_triggers_response
    read = (await v1.read_trigger_async(request={"trigger_id": trigger.id})).read_trigger_response
    await record_outcomes(store, trigger.id)
    occurrences = (
        await v1.list_triggers_occurrences_async(request={"trigger_id": trigger.id})
    ).list_triggers_occurrences_response
    info = (await v1.get_server_info_orchestration_async()).server_info
    await v1.delete_trigger_async(request={"trigger_id": trigger.id})

    assert trigger.workflow_id == "review-deposit"
    assert trigger.filter_ == "event.status == 'SUCCEEDED'"
    assert trigger.created_at.tzinfo is not None
    assert listed is not None
    assert [t.id for t in listed.data] == [trigger.id]
    assert read is not None
    assert read.data == trigger
    assert occurrences is not None
    failed, succeeded = occurrences.data
    assert succeeded.workflow_instance is not None
    assert succeeded.workflow_instance.id == "instance-1"
    assert succeeded.workflow_instance_id == "instance-1"
    assert succeeded.event["payload"]["amount"] == 2**70
    assert failed.error == "HTTP 404: no workflow"
    assert info is not None
    assert info.version == "9.9.9-test"
    with pytest.raises(orchestration.Error) as missing:
        await v1.read_trigger_async(request={"trigger_id": trigger.id})
    assert missing.value.data.error_code == orchestration.ErrorErrorCode.NOT_FOUND


async def test_v2_trigger_lifecycle(sdk: SDK, store: Store) -> None:
    v2 = sdk.orchestration.v2

    created = (await v2.create_trigger_async(request=TRIGGER)).v2_create_trigger_response
    assert created is not None
    trigger = created.data
    for i in range(3):
        await v2.create_trigger_async(request={**TRIGGER, "name": f"other {i}"})
    page = (
        await v2.list_triggers_async(request={"name": "other", "page_size": 2})
    ).v2_list_triggers_response
    assert page is not None
    following = (
        await v2.list_triggers_async(request={"cursor": page.cursor.next})
    ).v2_list_triggers_response
    read = (
        await v2.read_trigger_async(request={"trigger_id": trigger.id})
    ).v2_read_trigger_response
    await record_outcomes(store, trigger.id)
    occurrences = (
        await v2.list_triggers_occurrences_async(request={"trigger_id": trigger.id, "page_size": 1})
    ).v2_list_triggers_occurrences_response
    info = (await v2.get_server_info_async()).v2_server_info
    await v2.delete_trigger_async(request={"trigger_id": trigger.id})

    assert (page.cursor.page_size, page.cursor.has_more, len(page.cursor.data)) == (2, True, 2)
    assert following is not None
    assert [t.name for t in following.cursor.data] == ["other 2"]
    assert following.cursor.previous is not None
    assert read is not None
    assert read.data == trigger
    assert occurrences is not None
    assert occurrences.cursor.has_more
    [failed] = occurrences.cursor.data
    assert failed.error == "HTTP 404: no workflow"
    assert info is not None
    assert info.version == "9.9.9-test"
    with pytest.raises(orchestration.V2Error) as missing:
        await v2.read_trigger_async(request={"trigger_id": trigger.id})
    assert missing.value.data.error_code == orchestration.V2ErrorErrorCode.NOT_FOUND


async def test_v2_occurrences_page_through_the_sdk_and_a_filtered_cursor_too(
    catalog: TriggerCatalog, store: Store
) -> None:
    """Every page parses with the SDK, a cursor made with the filters (an extension the SDK
    does not send) included."""
    app = create_api(catalog, store, version="9.9.9-test")
    async with (
        serving(app, host="127.0.0.1", port=0) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        with httpx.Client() as client:
            v2 = SDK(
                server_url=f"http://127.0.0.1:{port}", client=client, async_client=http
            ).orchestration.v2
            created = (await v2.create_trigger_async(request=TRIGGER)).v2_create_trigger_response
            assert created is not None
            trigger_id = created.data.id
            for _ in range(3):
                await record_outcomes(store, trigger_id, start=_ * 2)

            seen = []
            page = (
                await v2.list_triggers_occurrences_async(
                    request={"trigger_id": trigger_id, "page_size": 4}
                )
            ).v2_list_triggers_occurrences_response
            while page is not None:
                seen.extend(page.cursor.data)
                if not page.cursor.has_more:
                    break
                page = (
                    await v2.list_triggers_occurrences_async(
                        request={"trigger_id": trigger_id, "cursor": page.cursor.next}
                    )
                ).v2_list_triggers_occurrences_response
            filtered = await http.get(
                f"/v2/triggers/{trigger_id}/occurrences",
                params={"status": "failed", "since": "2000-01-01T00:00:00Z", "pageSize": 2},
            )
            following = (
                await v2.list_triggers_occurrences_async(
                    request={"trigger_id": trigger_id, "cursor": filtered.json()["cursor"]["next"]}
                )
            ).v2_list_triggers_occurrences_response

    assert len(seen) == 6
    assert [o.date_ for o in seen] == sorted((o.date_ for o in seen), reverse=True)
    assert [o.error is None for o in seen] == [False, True] * 3  # newest (failed) first
    assert {o.workflow_instance_id for o in seen} == {None, "instance-1"}
    assert {o.trigger_id for o in seen} == {trigger_id}
    assert following is not None
    assert following.cursor.data == [seen[-2]]  # the oldest failure: the filter held
    assert following.cursor.previous is not None
    assert not following.cursor.has_more


async def test_v2_test_trigger(sdk: SDK) -> None:
    v2 = sdk.orchestration.v2
    created = (await v2.create_trigger_async(request=TRIGGER)).v2_create_trigger_response
    assert created is not None
    trigger_id = created.data.id

    envelope = {"type": "SAVED_PAYMENT", "payload": PAYMENT}
    matched = await v2.test_trigger_async(
        request={"trigger_id": trigger_id, "request_body": envelope}
    )
    missed = await v2.test_trigger_async(
        request={"trigger_id": trigger_id, "request_body": {"status": "FAILED"}}
    )

    assert matched.v2_test_trigger_response is not None
    report = matched.v2_test_trigger_response.data
    assert report.filter_ is not None
    assert report.filter_.match is True
    assert report.variables is not None
    assert report.variables["id"].value == "pay-1"
    assert missed.v2_test_trigger_response is not None
    report = missed.v2_test_trigger_response.data
    assert report.filter_ is not None
    assert report.filter_.match is False
    assert report.variables is not None
    assert report.variables["id"].value is None
    assert report.variables["id"].error


async def test_validation_and_conflict_surface_as_sdk_errors(
    sdk: SDK, catalog: TriggerCatalog
) -> None:
    yaml_definition = {"name": "from-yaml", "event": "SAVED_PAYMENT", "workflowID": "wf"}
    await catalog.reconcile_yaml([parse_definition(yaml_definition)])

    with pytest.raises(orchestration.V2Error) as invalid:
        await sdk.orchestration.v2.create_trigger_async(
            request={**TRIGGER, "filter": 'status == "SUCCEEDED"'}
        )
    with pytest.raises(orchestration.Error) as conflict:
        await sdk.orchestration.v1.delete_trigger_async(
            request={"trigger_id": yaml_trigger_id("from-yaml")}
        )

    assert invalid.value.data.error_code == orchestration.V2ErrorErrorCode.VALIDATION
    assert "'SUCCEEDED'" in invalid.value.data.error_message
    assert conflict.value.raw_response.status_code == 409
    assert conflict.value.data.error_code == orchestration.ErrorErrorCode.VALIDATION
    assert "configuration file" in conflict.value.data.error_message


# Authentication: the SDK as Formance users configure it


READ, WRITE = "orchestration:read", "orchestration:write"
STATIC_WRITE = "sdk-write-token-0123456789"
STATIC_READ = "sdk-read-token-0123456789"


@asynccontextmanager
async def served_sdk(
    catalog: TriggerCatalog,
    store: Store,
    auth: ApiAuth,
    headers: dict[str, str] | None = None,
    **sdk_options: Any,
) -> AsyncIterator[SDK]:
    app = create_api(catalog, store, version="9.9.9-test", auth=auth)
    async with (
        serving(app, host="127.0.0.1", port=0) as port,
        httpx.AsyncClient(headers=headers) as async_client,
    ):
        with httpx.Client(headers=headers) as client:
            yield SDK(
                server_url=f"http://127.0.0.1:{port}",
                client=client,
                async_client=async_client,
                **sdk_options,
            )


async def test_a_static_bearer_token_works_and_its_scope_is_enforced(
    catalog: TriggerCatalog, store: Store
) -> None:
    auth = ApiAuth(StaticTokens([(STATIC_WRITE, [WRITE]), (STATIC_READ, [READ])]))
    bearer = {"Authorization": f"Bearer {STATIC_WRITE}"}
    async with served_sdk(catalog, store, auth, bearer) as sdk:
        created = await sdk.orchestration.v2.create_trigger_async(request=TRIGGER)
        assert created.v2_create_trigger_response is not None
        listed = (await sdk.orchestration.v1.list_triggers_async(request={})).list_triggers_response
        assert listed is not None
        assert len(listed.data) == 1

    reader = {"Authorization": f"Bearer {STATIC_READ}"}
    async with served_sdk(catalog, store, auth, reader) as sdk:
        assert (await sdk.orchestration.v2.list_triggers_async(request={})).status_code == 200
        with pytest.raises(orchestration.V2Error) as forbidden:
            await sdk.orchestration.v2.create_trigger_async(request=TRIGGER)
    assert forbidden.value.raw_response.status_code == 403
    assert forbidden.value.data.error_code == orchestration.V2ErrorErrorCode.VALIDATION
    assert "orchestration:write" in forbidden.value.data.error_message

    async with served_sdk(catalog, store, auth) as sdk:
        with pytest.raises(orchestration.Error) as unauthenticated:
            await sdk.orchestration.v1.list_triggers_async(request={})
    assert unauthenticated.value.raw_response.status_code == 401
    assert unauthenticated.value.raw_response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_sdk_client_credentials_against_jwt_authentication(
    catalog: TriggerCatalog, store: Store
) -> None:
    with identity_provider() as idp:
        idp.add_client("sdk-writer", "writer-secret", [READ, WRITE])
        idp.add_client("sdk-reader", "reader-secret", [READ])
        verifier = JwtAuthenticator(JwksCache(idp.jwks_url), issuer=idp.issuer, audience=AUDIENCE)
        writer = Security(
            client_id="sdk-writer", client_secret="writer-secret", token_url=idp.token_url
        )
        async with served_sdk(catalog, store, ApiAuth(verifier), security=writer) as sdk:
            created = await sdk.orchestration.v2.create_trigger_async(request=TRIGGER)
            assert created.v2_create_trigger_response is not None
            trigger_id = created.v2_create_trigger_response.data.id
            read = await sdk.orchestration.v1.read_trigger_async(request={"trigger_id": trigger_id})
            assert read.read_trigger_response is not None

        reader = Security(
            client_id="sdk-reader", client_secret="reader-secret", token_url=idp.token_url
        )
        async with served_sdk(catalog, store, ApiAuth(verifier), security=reader) as sdk:
            page = await sdk.orchestration.v2.list_triggers_async(request={})
            assert page.v2_list_triggers_response is not None
            assert [t.id for t in page.v2_list_triggers_response.cursor.data] == [trigger_id]
            with pytest.raises(orchestration.V2Error) as forbidden:
                await sdk.orchestration.v2.delete_trigger_async(request={"trigger_id": trigger_id})
    assert forbidden.value.raw_response.status_code == 403
