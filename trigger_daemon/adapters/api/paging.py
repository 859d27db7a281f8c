"""v2 pagination: opaque cursors, the paging rule, and the two lists it pages.

A cursor is base64url JSON carrying everything the next request needs (what it lists, the page
size, the name filter, the direction and the pivot item's key), so a request with a cursor needs no
other parameter; any other one sent along with it is ignored. Pages are keyset pages: a cursor
points at an item, not an offset, so inserts and deletes between requests neither skip nor repeat
items. Triggers are listed oldest first, occurrences newest first.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

import pydantic
from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field

from trigger_daemon.adapters.api.schemas import as_utc
from trigger_daemon.core.occurrences import Occurrence
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
    direction: Direction = Direction.NEXT
    key: str | None = None

    def towards(self, direction: Direction, key: str) -> CursorState:
        return self.model_copy(update={"direction": direction, "key": key})


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


class OccurrenceHistory:
    """One trigger's occurrences, newest first, paged by the store on their `seq`."""

    def __init__(self, store: Store, trigger_id: str) -> None:
        self._store = store
        self._trigger_id = trigger_id

    def key_of(self, item: Occurrence) -> str:
        return str(item.seq)

    async def following(self, key: str | None, limit: int) -> Sequence[Occurrence]:
        before = None if key is None else _seq(key)
        return await self._store.list_occurrences(self._trigger_id, limit=limit, before_seq=before)

    async def preceding(self, key: str, limit: int) -> Sequence[Occurrence]:
        return await self._store.list_occurrences(
            self._trigger_id, limit=limit, after_seq=_seq(key)
        )


def _seq(key: str) -> int:
    if not (key.isascii() and key.isdigit()):
        raise bad_cursor()
    return int(key)
