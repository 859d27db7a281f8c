"""The v1 and v2 route tables, with the Formance spec's operation ids.

Each router is mounted twice by `application`: at the root and under `/api/orchestration`
(the path the SDKs and a Formance gateway use); only the root copy appears in the OpenAPI
document. With authentication on, each route requires its Formance scope: GET routes
`orchestration:read`, the others (create, delete, test, retry) `orchestration:write`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends

from trigger_daemon.adapters.api import schemas
from trigger_daemon.adapters.api.auth import READ, WRITE, ApiAuth, requires
from trigger_daemon.adapters.api.operations import V1_OCCURRENCES_LIMIT, TriggerHandlers
from trigger_daemon.core.triggers import TriggerDefinition

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "default": {"model": schemas.Error, "description": "Error"},
}


def _inline_definitions(schema: dict[str, Any]) -> dict[str, Any]:
    """The model's JSON schema with its `$defs` substituted in place: a `#/$defs/...` reference
    inside an OpenAPI document would point at the document's root, where nothing is."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref", "")
            if reference.startswith("#/$defs/"):
                return resolve(dict(definitions[reference.removeprefix("#/$defs/")]))
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """The `openapi_extra` of a route that requires a JSON body of `schema`."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


# The bodies are parsed by the operations, not by FastAPI, so every problem gets the same
# message; these document what they validate.
_TRIGGER_SCHEMA = _inline_definitions(TriggerDefinition.model_json_schema(by_alias=True))
_TEST_EVENT_SCHEMA = {
    "type": "object",
    "additionalProperties": True,
    "description": "A full event envelope (with `type` and `payload`), or a bare payload that "
    "gets the trigger's event type.",
}
_TRIGGER_BODY = json_body(_TRIGGER_SCHEMA)
_TEST_BODY = json_body(_TEST_EVENT_SCHEMA)
_UNSAVED_TEST_BODY = json_body(
    {
        "type": "object",
        "required": ["trigger", "event"],
        "additionalProperties": False,
        "properties": {"trigger": _TRIGGER_SCHEMA, "event": _TEST_EVENT_SCHEMA},
    }
)


def v1_router(handlers: TriggerHandlers, auth: ApiAuth | None = None) -> APIRouter:
    router = APIRouter(tags=["orchestration.v1"], responses=ERROR_RESPONSES)
    _add = route_adder(auth)
    _add(router, "GET", "/_info", handlers.server_info, "getServerInfo")
    _add(router, "GET", "/triggers", handlers.list_triggers, "listTriggers")
    _add(
        router,
        "POST",
        "/triggers",
        handlers.create_trigger,
        "createTrigger",
        status_code=201,
        openapi_extra=_TRIGGER_BODY,
    )
    _add(router, "GET", "/triggers/{triggerID}", handlers.read_trigger, "readTrigger")
    _add(
        router,
        "DELETE",
        "/triggers/{triggerID}",
        handlers.delete_trigger,
        "deleteTrigger",
        status_code=204,
    )
    _add(
        router,
        "GET",
        "/triggers/{triggerID}/occurrences",
        handlers.list_occurrences,
        "listTriggersOccurrences",
        description=f"The newest {V1_OCCURRENCES_LIMIT} occurrences, newest first. "
        "The v2 route pages through all of them.",
    )
    return router


def v2_router(handlers: TriggerHandlers, auth: ApiAuth | None = None) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["orchestration.v2"], responses=ERROR_RESPONSES)
    _add = route_adder(auth)
    _add(router, "GET", "/_info", handlers.server_info, "v2GetServerInfo")
    _add(
        router,
        "GET",
        "/triggers",
        handlers.list_triggers_page,
        "v2ListTriggers",
        description="Triggers oldest first, one page at a time.",
    )
    _add(
        router,
        "POST",
        "/triggers",
        handlers.create_trigger,
        "v2CreateTrigger",
        status_code=201,
        openapi_extra=_TRIGGER_BODY,
    )
    _add(router, "GET", "/triggers/{triggerID}", handlers.read_trigger, "v2ReadTrigger")
    _add(
        router,
        "DELETE",
        "/triggers/{triggerID}",
        handlers.delete_trigger,
        "v2DeleteTrigger",
        status_code=204,
    )
    _add(
        router,
        "GET",
        "/triggers/{triggerID}/occurrences",
        handlers.list_occurrences_page,
        "v2ListTriggersOccurrences",
        description="Occurrences newest first, one page at a time. Extensions: `status`, "
        "`since` and `until` filter them (a time needs its zone: one without is refused); "
        "the cursor keeps the filters it was made with.",
    )
    _add(
        router,
        "GET",
        "/occurrences",
        handlers.query_occurrences_page,
        "v2ListOccurrences",
        description="Extension: occurrences across triggers, newest first, one page at a time, "
        "filtered by `eventID`, `triggerID`, `status`, `since` and `until` (a time needs its "
        "zone: one without is refused). `eventID` alone answers which triggers an event fired "
        "and how each ended. An unknown `triggerID` gives an empty page, since a deleted "
        "trigger's occurrences stay.",
    )
    _add(
        router,
        "POST",
        "/triggers/{triggerID}/test",
        handlers.test_trigger,
        "testTrigger",
        openapi_extra=_TEST_BODY,
        description="Evaluate the trigger against an event; nothing runs. A full envelope is "
        "checked on type and version too; a bare payload on the filter and vars only. The "
        "answer's `explain` (an extension) says what decided it.",
    )
    _add(
        router,
        "POST",
        "/triggers/test",
        handlers.test_unsaved_trigger,
        "v2TestUnsavedTrigger",
        openapi_extra=_UNSAVED_TEST_BODY,
        description="Extension: test a trigger that is not saved, as testTrigger does; an "
        "invalid trigger is refused as createTrigger would refuse it.",
    )
    _add(
        router,
        "POST",
        "/triggers/{triggerID}/occurrences/{occurrenceID}/retry",
        handlers.retry_occurrence,
        "v2RetryTriggerOccurrence",
        description="Extension: run a `failed` occurrence again, with the same Idempotency-Key, "
        "and answer it as it ends now. Other statuses are refused (409).",
    )
    return router


def route_adder(auth: ApiAuth | None) -> Callable[..., None]:
    """Adds a route, guarded by the scope its method needs when `auth` is set."""

    def add(
        router: APIRouter,
        method: str,
        path: str,
        endpoint: Callable[..., Any],
        operation_id: str,
        *,
        status_code: int = 200,
        **options: Any,
    ) -> None:
        scope = READ if method == "GET" else WRITE
        guard = [] if auth is None else [Depends(requires(auth, scope))]
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            operation_id=operation_id,
            status_code=status_code,
            response_model_exclude_none=True,
            dependencies=guard,
            **options,
        )

    return add
