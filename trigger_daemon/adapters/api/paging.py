"""v2 pagination: opaque cursors, the paging rule, and the lists it pages.

A cursor is base64url JSON carrying everything the next request needs (what it lists, the page
size, the filters, the direction and the pivot item's key), so a request with a cursor needs no
other parameter; any other one sent along with it is ignored. Pages are keyset pages: a cursor
points at an item, not an offset, so inserts and deletes between requests neither skip nor repeat
items. Triggers are listed oldest first, occurrences newest first (by seq, or by date then seq
when filtered on a time window: see core.occurrences.OccurrenceFilter).
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

import pydantic
from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field

from trigger_daemon.adapters.api.occurrence_filters import (
    OccurrenceParameters,
    as_parameters,
    format_time,
    parse_filter,
)
from trigger_daemon.adapters.api.schemas import as_utc
from trigger_daemon.core.occurrences import Occurrence, OccurrenceFilter, OccurrenceKey
from trigger_daemon.core.triggers import Trigger
from trigger_daemon.ports import Store

DEFAULT_PAGE_SIZE = 15
MAX_PAGE_SIZE = 1000

T = TypeVar("T")


class Direction(StrEnum):
    NEXT = "next"
    PREVIOUS = "previous"


class CursorState(BaseModel):
    """A request for one page; `key` is the pivot item's key (None on the first page)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    scope: str
    page_size: int = Field(alias="pageSize", ge=1, le=MAX_PAGE_SIZE)
    name: str | None = None
    # The occurrence filters, as query-parameter text (occurrence_filters.as_parameters).
    trigger_id: str | None = Field(None, alias="triggerID")
    event_id: str | None = Field(None, alias="eventID")
    status: str | None = None
    since: str | None = None
    until: str | None = None
    direction: Direction = Direction.NEXT
    key: str | None = None

    def towards(self, direction: Direction, key: str) -> CursorState:
        return self.model_copy(update={"direction": direction, "key": key})

    @classmethod
    def of_occurrences(cls, scope: str, page_size: int, selected: OccurrenceFilter) -> CursorState:
        """The first page of an occurrence listing; the trigger of a per-trigger listing is
        in its scope, not among the filters."""
        parameters = as_parameters(selected)
        return cls(
            scope=scope,
            page_size=page_size,
            trigger_id=parameters.trigger_id,
            event_id=parameters.event_id,
            status=parameters.status,
            since=parameters.since,
            until=parameters.until,
        )

    def occurrence_filter(self) -> OccurrenceFilter:
        """The filter this cursor was made with (parsed as the first request's was)."""
        return parse_filter(
            OccurrenceParameters(
                trigger_id=self.trigger_id,
                event_id=self.event_id,
                status=self.status,
                since=self.since,
                until=self.until,
            )
        )


def encode_cursor(state: CursorState) -> str:
    raw = state.model_dump_json(by_alias=True, exclude_none=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, scope: str) -> CursorState:
    """The state inside `token`, or a 400 when it is not a cursor of this list."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        state = CursorState.model_validate_json(raw)
    except (binascii.Error, ValueError, pydantic.ValidationError):
        raise bad_cursor() from None
    if state.scope != scope or state.key is None:
        raise bad_cursor()
    return state


def bad_cursor() -> HTTPException:
    return HTTPException(400, "invalid cursor: pass back a `next` or `previous` value unchanged")


class PageSource(Protocol[T]):
    """A list in display order; keys order items the way they are displayed."""

    def key_of(self, item: T) -> str: ...

    async def following(self, key: str | None, limit: int) -> Sequence[T]:
        """The first `limit` items after `key` (from the start when None), in display order."""
        ...

    async def preceding(self, key: str, limit: int) -> Sequence[T]:
        """The last `limit` items before `key`, in display order."""
        ...


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    next: CursorState | None
    previous: CursorState | None


async def paginate(source: PageSource[T], state: CursorState) -> Page[T]:
    """One page, fetching one extra item to know whether more lie in the paging direction.

    Coming from a cursor, the way back always exists: it pivots on the page's edge item, or on
    the cursor's own pivot when the page came back empty.
    """
    size = state.page_size
    if state.direction is Direction.NEXT:
        rows = await source.following(state.key, size + 1)
        items = rows[:size]
        more_after, more_before = len(rows) > size, state.key is not None
    else:
        assert state.key is not None  # decode_cursor guarantees a pivot
        rows = await source.preceding(state.key, size + 1)
        items = rows[-size:]
        more_after, more_before = True, len(rows) > size
    first = source.key_of(items[0]) if items else state.key
    last = source.key_of(items[-1]) if items else state.key
    return Page(
        items=items,
        next=state.towards(Direction.NEXT, last) if more_after and last else None,
        previous=state.towards(Direction.PREVIOUS, first) if more_before and first else None,
    )


def trigger_key(trigger: Trigger) -> str:
    """Sorts as (createdAt, id): a fixed-width UTC timestamp, then the id."""
    return f"{as_utc(trigger.created_at):%Y-%m-%dT%H:%M:%S.%f}Z {trigger.id}"


class TriggerList:
    """Every trigger (the store returns them all), paged in memory, oldest first."""

    def __init__(self, triggers: Sequence[Trigger]) -> None:
        self._items = sorted(triggers, key=trigger_key)
        self._keys = [trigger_key(trigger) for trigger in self._items]

    def key_of(self, item: Trigger) -> str:
        return trigger_key(item)

    async def following(self, key: str | None, limit: int) -> Sequence[Trigger]:
        start = 0 if key is None else bisect.bisect_right(self._keys, key)
        return self._items[start : start + limit]

    async def preceding(self, key: str, limit: int) -> Sequence[Trigger]:
        end = bisect.bisect_left(self._keys, key)
        return self._items[max(0, end - limit) : end]


class OccurrenceQuery:
    """The occurrences a filter selects, newest first, paged by the store on their keys: `seq`,
    or `date seq` (a fixed-width UTC time, then seq) when the filter has a time window."""

    def __init__(self, store: Store, selected: OccurrenceFilter) -> None:
        self._store = store
        self._selected = selected

    def key_of(self, item: Occurrence) -> str:
        key = self._selected.key_of(item)
        return str(key.seq) if key.date is None else f"{format_time(key.date)} {key.seq}"

    async def following(self, key: str | None, limit: int) -> Sequence[Occurrence]:
        before = None if key is None else self._key(key)
        return await self._store.query_occurrences(self._selected, limit=limit, before=before)

    async def preceding(self, key: str, limit: int) -> Sequence[Occurrence]:
        after = self._key(key)
        return await self._store.query_occurrences(self._selected, limit=limit, after=after)

    def _key(self, text: str) -> OccurrenceKey:
        date_text, _, seq_text = text.rpartition(" ")
        if not (seq_text.isascii() and seq_text.isdigit()) or bool(date_text) != (
            self._selected.by_date
        ):
            raise bad_cursor()
        if not date_text:
            return OccurrenceKey(int(seq_text))
        try:
            date = datetime.strptime(date_text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        except ValueError:
            raise bad_cursor() from None
        return OccurrenceKey(int(seq_text), date)
