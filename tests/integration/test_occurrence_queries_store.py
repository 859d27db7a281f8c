"""`Store.query_occurrences` against SQLite, PostgreSQL and the in-memory fake: every filter
shape selects exactly what OccurrenceFilter.admits says, in the listing's order, page by page
in both directions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from trigger_daemon.adapters.store import open_store
from trigger_daemon.core.occurrences import (
    NewOccurrence,
    Occurrence,
    OccurrenceFilter,
    OccurrenceKey,
    OccurrenceStatus,
    Outcome,
)
from trigger_daemon.ports import Store
from trigger_daemon.testing import InMemoryStore

from .test_store import SQL_BACKENDS, T0, database_url

PENDING, SUCCEEDED, FAILED = OccurrenceStatus


@pytest.fixture(params=[*SQL_BACKENDS, "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield InMemoryStore()
        return
    opened = await open_store(database_url(request.param, request, tmp_path))
    yield opened
    await opened.close()


async def history(store: Store) -> list[Occurrence]:
    """24 events, each matched by one to three of the triggers t-a, t-b, t-c; dates that do
    not rise with seq everywhere (as with replicas' clocks); every status."""
    new = []
    for n in range(24):
        # Event 7 is recorded late: its date is before its neighbours'.
        date = T0 + timedelta(minutes=n if n != 7 else 2, seconds=n % 3)
        for trigger in ["t-a", "t-b", "t-c"][: 1 + n % 3]:
            event = {"type": "SAVED_PAYMENT", "payload": {"n": n}}
            new.append(NewOccurrence(trigger, f"SAVED_PAYMENT:e{n}", event, date))
    begun = await store.begin_occurrences(new)
    stored = []
    for i, occurrence in enumerate(begun):
        if i % 4 == 0:
            stored.append(occurrence)  # stays pending
        elif i % 4 == 3:
            stored.append(await store.finish_occurrence(occurrence, Outcome.failed("no", 1)))
        else:
            instance = {"id": f"inst-{i}"}
            done = Outcome.succeeded(instance, attempts=1, vars={})
            stored.append(await store.finish_occurrence(occurrence, done))
    return stored


def expected(stored: list[Occurrence], selected: OccurrenceFilter) -> list[str]:
    admitted = [o for o in stored if selected.admits(o)]
    admitted.sort(key=lambda o: selected.key_of(o).sort_key(), reverse=True)
    return [o.id for o in admitted]


FILTERS = {
    "nothing": OccurrenceFilter(),
    "trigger": OccurrenceFilter(trigger_id="t-b"),
    "trigger and one status": OccurrenceFilter(trigger_id="t-a", statuses=frozenset({FAILED})),
    "trigger and two statuses": OccurrenceFilter(
        trigger_id="t-a", statuses=frozenset({PENDING, SUCCEEDED})
    ),
    "trigger and window": OccurrenceFilter(
        trigger_id="t-a", since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=15)
    ),
    "trigger, status and since": OccurrenceFilter(
        trigger_id="t-c", statuses=frozenset({SUCCEEDED}), since=T0 + timedelta(minutes=5)
    ),
    "one status": OccurrenceFilter(statuses=frozenset({PENDING})),
    "two statuses": OccurrenceFilter(statuses=frozenset({PENDING, FAILED})),
    "every status": OccurrenceFilter(statuses=frozenset(OccurrenceStatus)),
    "until": OccurrenceFilter(until=T0 + timedelta(minutes=9)),
    "window and status": OccurrenceFilter(
        since=T0 + timedelta(minutes=3),
        until=T0 + timedelta(minutes=20),
        statuses=frozenset({SUCCEEDED, FAILED}),
    ),
    "event": OccurrenceFilter(event_id="SAVED_PAYMENT:e5"),
    "event and trigger": OccurrenceFilter(event_id="SAVED_PAYMENT:e5", trigger_id="t-b"),
    "event and status": OccurrenceFilter(
        event_id="SAVED_PAYMENT:e8", statuses=frozenset({FAILED, PENDING})
    ),
    "event and window": OccurrenceFilter(event_id="SAVED_PAYMENT:e7", since=T0),
    "unknown trigger": OccurrenceFilter(trigger_id="nobody"),
    "empty window": OccurrenceFilter(since=T0 + timedelta(days=1)),
}


@pytest.mark.parametrize("name", FILTERS)
async def test_each_filter_pages_exactly_its_occurrences_newest_first_both_ways(
    store: Store, name: str
) -> None:
    stored = await history(store)
    selected = FILTERS[name]
    want = expected(stored, selected)

    pages: list[list[Occurrence]] = []
    before: OccurrenceKey | None = None
    while page := await store.query_occurrences(selected, limit=4, before=before):
        pages.append(page)
        before = selected.key_of(page[-1])
    back: list[list[Occurrence]] = []  # from the oldest towards the newest
    after = before
    while after is not None and (
        page := await store.query_occurrences(selected, limit=4, after=after)
    ):
        back.append(page)
        after = selected.key_of(page[0])

    assert [o.id for page in pages for o in page] == want
    assert [o.id for page in reversed(back) for o in page] == want[:-1]  # all above the oldest
    assert all(len(page) == 4 for page in pages[:-1])


async def test_a_time_window_is_ordered_by_date_then_seq(store: Store) -> None:
    stored = await history(store)
    late = next(o for o in stored if (o.event_id, o.trigger_id) == ("SAVED_PAYMENT:e7", "t-b"))
    by_seq = await store.query_occurrences(OccurrenceFilter(trigger_id="t-b"), limit=100)
    by_date = await store.query_occurrences(OccurrenceFilter(trigger_id="t-b", since=T0), limit=100)

    assert {o.id for o in by_seq} == {o.id for o in by_date}
    assert [o.seq for o in by_seq] == sorted((o.seq for o in by_seq), reverse=True)
    assert [(o.date, o.seq) for o in by_date] == sorted(
        ((o.date, o.seq) for o in by_date), reverse=True
    )
    assert [o.id for o in by_seq].index(late.id) < [o.id for o in by_date].index(late.id)


async def test_since_is_included_and_until_excluded(store: Store) -> None:
    stored = await history(store)
    edge = T0 + timedelta(minutes=4, seconds=1)  # event 4's date
    at_edge = {o.id for o in stored if o.date == edge}

    from_edge = await store.query_occurrences(OccurrenceFilter(since=edge), limit=1000)
    to_edge = await store.query_occurrences(OccurrenceFilter(until=edge), limit=1000)

    assert at_edge
    assert at_edge <= {o.id for o in from_edge}
    assert not at_edge & {o.id for o in to_edge}
    assert len(from_edge) + len(to_edge) == len(stored)


async def test_a_key_of_the_other_order_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="order"):
        await store.query_occurrences(
            OccurrenceFilter(since=T0), limit=1, before=OccurrenceKey(seq=5)
        )
    with pytest.raises(ValueError, match="order"):
        await store.query_occurrences(OccurrenceFilter(), limit=1, after=OccurrenceKey(5, T0))


async def test_a_cursor_outside_the_window_pages_from_the_windows_edge(store: Store) -> None:
    stored = await history(store)
    window = OccurrenceFilter(
        trigger_id="t-a", since=T0 + timedelta(minutes=5), until=T0 + timedelta(minutes=10)
    )
    everything = expected(stored, window)
    later = OccurrenceKey(stored[-1].seq + 1, T0 + timedelta(days=1))
    earlier = OccurrenceKey(0, T0 - timedelta(days=1))

    newest = await store.query_occurrences(window, limit=2, before=later)
    oldest = await store.query_occurrences(window, limit=2, after=earlier)

    assert [o.id for o in newest] == everything[:2]
    assert [o.id for o in oldest] == everything[-2:]
