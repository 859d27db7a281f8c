"""The operations behind both API versions, once each; `routes` gives them paths and names.

Operations move data only: decisions (validation, matching, paging) live in the core and in
`paging`. Errors are raised, never answered here: `error_mapping` turns every one into the
wire shape.
"""

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Annotated, Any, TypeVar

from fastapi import HTTPException, Path, Query, Request, Response

from trigger_daemon.adapters.api import schemas
from trigger_daemon.adapters.api.occurrence_filters import (
    STATUSES,
    OccurrenceParameters,
    parse_filter,
)
from trigger_daemon.adapters.api.paging import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    CursorState,
    OccurrenceQuery,
    Page,
    TriggerList,
    decode_cursor,
    encode_cursor,
    paginate,
)
from trigger_daemon.core import json_input
from trigger_daemon.core.events import Unprocessable
from trigger_daemon.core.occurrences import Occurrence
from trigger_daemon.core.rehearsal import explain, rehearsal_event
from trigger_daemon.core.triggers import (
    MAX_NAME_LENGTH,
    CompiledTrigger,
    compile_trigger,
    parse_definition,
)
from trigger_daemon.errors import NotFoundError
from trigger_daemon.ports import Store
from trigger_daemon.triggers.catalog import TriggerCatalog

# v1 has no paging: it answers the newest occurrences only.
V1_OCCURRENCES_LIMIT = 100

T = TypeVar("T")
U = TypeVar("U")

TriggerID = Annotated[str, Path(alias="triggerID", description="The trigger id")]
NameFilter = Annotated[
    str | None,
    Query(max_length=MAX_NAME_LENGTH, description="Search by name: a case-insensitive substring."),
]
PageSize = Annotated[
    int,
    Query(
        alias="pageSize",
        ge=1,
        le=MAX_PAGE_SIZE,
        description=f"The maximum number of results per page (at most {MAX_PAGE_SIZE}).",
    ),
]
MAX_CURSOR_LENGTH = 2048
CursorToken = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_LENGTH,
        description="A `next` or `previous` value from an earlier page. It carries the page size "
        "and the filters, so no other parameter is needed (others are ignored).",
    ),
]

# The occurrence filters (extensions). Their lengths keep a cursor carrying them all within
# MAX_CURSOR_LENGTH, even of characters that JSON escapes (six bytes each).
MAX_EVENT_ID_LENGTH = 128
MAX_TRIGGER_ID_LENGTH = 64
_TIME_HELP = (
    "an RFC 3339 time with a time zone (`Z` or `±hh:mm`, a `+` sent as `%2B`); a time "
    "without one is refused"
)
StatusFilter = Annotated[
    str | None,
    Query(
        max_length=64,
        description=f"Extension: only occurrences with one of these statuses ({STATUSES}), "
        "comma-separated in one parameter.",
    ),
]
SinceFilter = Annotated[
    str | None,
    Query(
        max_length=64,
        description=f"Extension: only occurrences recorded at or after this time: {_TIME_HELP}. "
        "With `since` or `until`, the order is by that date, then insertion.",
    ),
]
UntilFilter = Annotated[
    str | None,
    Query(
        max_length=64,
        description=f"Extension: only occurrences recorded before this time: {_TIME_HELP}.",
    ),
]
EventFilter = Annotated[
    str | None,
    Query(
        alias="eventID",
        max_length=MAX_EVENT_ID_LENGTH,
        description="Only the occurrences of this event (one per trigger it matched).",
    ),
]
TriggerFilter = Annotated[
    str | None,
    Query(
        alias="triggerID",
        max_length=MAX_TRIGGER_ID_LENGTH,
        description="Only this trigger's occurrences; a trigger that has none, or that does "
        "not exist (its occurrences outlive it), gives an empty page.",
    ),
]


# Re-drives a failed occurrence (trigger id, occurrence id) and returns it as it ends now.
RetryOccurrence = Callable[[str, str], Awaitable[Occurrence]]

OccurrenceID = Annotated[str, Path(alias="occurrenceID", description="The occurrence id")]


class TriggerHandlers:
    def __init__(
        self,
        catalog: TriggerCatalog,
        store: Store,
        version: str,
        retry_occurrence: RetryOccurrence | None = None,
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._version = version
        self._retry_occurrence = retry_occurrence

    async def server_info(self) -> schemas.ServerInfo:
        return schemas.ServerInfo(version=self._version)

    async def list_triggers(self, name: NameFilter = None) -> schemas.Data[list[schemas.Trigger]]:
        triggers = await self._store.list_triggers(name=name)
        return schemas.Data(data=[schemas.Trigger.of(trigger) for trigger in triggers])

    async def list_triggers_page(
        self,
        name: NameFilter = None,
        page_size: PageSize = DEFAULT_PAGE_SIZE,
        cursor: CursorToken = None,
    ) -> schemas.CursorResponse[schemas.Trigger]:
        state = _page_request("triggers", cursor, page_size, name)
        source = TriggerList(await self._store.list_triggers(name=state.name))
        page = await paginate(source, state)
        return _cursor_response(state, page, schemas.Trigger.of)

    async def create_trigger(self, request: Request) -> schemas.Data[schemas.Trigger]:
        definition = parse_definition(await read_json(request))
        trigger = await self._catalog.create(definition)
        return schemas.Data(data=schemas.Trigger.of(trigger))

    async def read_trigger(self, trigger_id: TriggerID) -> schemas.Data[schemas.Trigger]:
        trigger = await self._store.get_trigger(trigger_id)
        return schemas.Data(data=schemas.Trigger.of(trigger))

    async def delete_trigger(self, trigger_id: TriggerID) -> Response:
        await self._catalog.delete(trigger_id)
        return Response(status_code=204)

    async def list_occurrences(
        self, trigger_id: TriggerID
    ) -> schemas.Data[list[schemas.TriggerOccurrence]]:
        await self._store.get_trigger(trigger_id)
        rows = await self._store.list_occurrences(trigger_id, limit=V1_OCCURRENCES_LIMIT)
        return schemas.Data(data=[schemas.TriggerOccurrence.of(row) for row in rows])

    async def list_occurrences_page(
        self,
        trigger_id: TriggerID,
        page_size: PageSize = DEFAULT_PAGE_SIZE,
        cursor: CursorToken = None,
        status: StatusFilter = None,
        since: SinceFilter = None,
        until: UntilFilter = None,
    ) -> schemas.CursorResponse[schemas.TriggerOccurrence]:
        await self._store.get_trigger(trigger_id)
        parameters = OccurrenceParameters(status=status, since=since, until=until)
        state = _occurrence_request(f"occurrences:{trigger_id}", cursor, page_size, parameters)
        return await self._occurrence_page(state, trigger_id)

    async def query_occurrences_page(
        self,
        event_id: EventFilter = None,
        trigger_id: TriggerFilter = None,
        status: StatusFilter = None,
        since: SinceFilter = None,
        until: UntilFilter = None,
        page_size: PageSize = DEFAULT_PAGE_SIZE,
        cursor: CursorToken = None,
    ) -> schemas.CursorResponse[schemas.TriggerOccurrence]:
        parameters = OccurrenceParameters(trigger_id, event_id, status, since, until)
        state = _occurrence_request("occurrences", cursor, page_size, parameters)
        return await self._occurrence_page(state)

    async def _occurrence_page(
        self, state: CursorState, trigger_id: str | None = None
    ) -> schemas.CursorResponse[schemas.TriggerOccurrence]:
        selected = state.occurrence_filter()
        if trigger_id is not None:  # a per-trigger listing: the trigger is in the scope
            selected = replace(selected, trigger_id=trigger_id)
        page = await paginate(OccurrenceQuery(self._store, selected), state)
        return _cursor_response(state, page, schemas.TriggerOccurrence.of)

    async def retry_occurrence(
        self, trigger_id: TriggerID, occurrence_id: OccurrenceID
    ) -> schemas.Data[schemas.TriggerOccurrence]:
        if self._retry_occurrence is None:
            raise NotFoundError("re-drive is not available on this server")
        occurrence = await self._retry_occurrence(trigger_id, occurrence_id)
        return schemas.Data(data=schemas.TriggerOccurrence.of(occurrence))

    async def test_trigger(
        self, trigger_id: TriggerID, request: Request
    ) -> schemas.Data[schemas.TriggerTest]:
        compiled = self._catalog.compiled(trigger_id)
        if compiled is None:  # not active here yet (created by another replica): compile now
            compiled = compile_trigger(await self._store.get_trigger(trigger_id))
        return _tested(compiled, await read_json(request))

    async def test_unsaved_trigger(self, request: Request) -> schemas.Data[schemas.TriggerTest]:
        body = await read_json(request)
        if not isinstance(body, dict) or set(body) != {"trigger", "event"}:
            raise HTTPException(400, 'send {"trigger": {a trigger}, "event": {an event}}')
        definition = parse_definition(body["trigger"])
        return _tested(TriggerCatalog.compile_definition(definition), body["event"])


def _tested(compiled: CompiledTrigger, body: object) -> schemas.Data[schemas.TriggerTest]:
    event = rehearsal_event(body, compiled.trigger.event)
    if isinstance(event, Unprocessable):
        raise HTTPException(400, f"the test event cannot be used: {event.detail}")
    return schemas.Data(data=schemas.TriggerTest.of(explain(compiled, event)))


def _page_request(
    scope: str, cursor: str | None, page_size: int, name: str | None = None
) -> CursorState:
    if cursor:
        return decode_cursor(cursor, scope)
    return CursorState(scope=scope, page_size=page_size, name=name)


def _occurrence_request(
    scope: str, cursor: str | None, page_size: int, parameters: OccurrenceParameters
) -> CursorState:
    if cursor:
        return decode_cursor(cursor, scope)
    return CursorState.of_occurrences(scope, page_size, parse_filter(parameters))


def _cursor_response(
    state: CursorState, page: Page[T], convert: Callable[[T], U]
) -> schemas.CursorResponse[U]:
    cursor = schemas.Cursor(
        page_size=state.page_size,
        has_more=page.next is not None,
        next=encode_cursor(page.next) if page.next else None,
        previous=encode_cursor(page.previous) if page.previous else None,
        data=[convert(item) for item in page.items],
    )
    return schemas.CursorResponse(cursor=cursor)


async def read_json(request: Request) -> Any:
    """The body as strict JSON (see core.json_input), integers exact. The body's size was
    bounded before it was read (limits.BodyLimit)."""
    raw = await request.body()
    if not raw.strip():
        raise HTTPException(400, "the request body is empty: send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, f"the request body is not UTF-8 (byte {exc.start})") from None
    try:
        return json_input.loads(text)
    except json_input.JSONInputError as exc:
        raise HTTPException(400, f"the request body is not valid JSON: {exc}") from None
