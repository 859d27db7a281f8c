"""Occurrence filter parameters: parsing, their text in cursors, and paging a filtered listing
over the in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import HTTPException

from trigger_daemon.adapters.api.occurrence_filters import (
    OccurrenceParameters,
    as_parameters,
    parse_filter,
    parse_statuses,
    parse_time,
)
from trigger_daemon.adapters.api.operations import (
    MAX_CURSOR_LENGTH,
    MAX_EVENT_ID_LENGTH,
    MAX_TRIGGER_ID_LENGTH,
)
from trigger_daemon.adapters.api.paging import (
    MAX_PAGE_SIZE,
    CursorState,
    Direction,
    OccurrenceQuery,
    decode_cursor,
    encode_cursor,
    paginate,
)
from trigger_daemon.core.occurrences import NewOccurrence, OccurrenceFilter, OccurrenceStatus
from trigger_daemon.testing import InMemoryStore

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def refusal(call: object) -> str:
    assert callable(call)
    with pytest.raises(HTTPException) as caught:
        call()
    assert caught.value.status_code == 400
    return str(caught.value.detail)


@pytest.mark.parametrize(
    ("text", "statuses"),
    [
        ("pending", {"pending"}),
        ("failed,pending", {"pending", "failed"}),
        (" succeeded , failed ", {"succeeded", "failed"}),
        ("failed,failed", {"failed"}),
    ],
)
def test_statuses_are_comma_separated(text: str, statuses: set[str]) -> None:
    assert parse_statuses(text) == {OccurrenceStatus(s) for s in statuses}


@pytest.mark.parametrize("text", ["done", "pending,done", "", "pending,", "PENDING"])
def test_an_unknown_status_is_refused_naming_the_parameter_and_the_choices(text: str) -> None:
    detail = refusal(lambda: parse_statuses(text))
    assert detail.startswith("status: '")
    assert detail.endswith("' is not one of pending, succeeded, failed")


def test_the_refusal_names_the_bad_value() -> None:
    detail = refusal(lambda: parse_statuses("pending,done"))
    assert detail == "status: 'done' is not one of pending, succeeded, failed"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", T0),
        ("2024-05-01t12:00:00z", T0),
        ("2024-05-01T14:00:00+02:00", T0),
        ("2024-05-01T11:30:00-00:30", T0),
        ("2024-05-01T12:00:00.25Z", T0 + timedelta(milliseconds=250)),
        ("2024-05-01T12:00:00.123456789Z", T0 + timedelta(microseconds=123456)),
    ],
)
def test_times_are_rfc_3339_with_a_zone_read_as_utc(text: str, expected: datetime) -> None:
    parsed = parse_time("since", text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T12:00:00",  # no zone: refused, not guessed
        "2024-05-01",
        "yesterday",
        "1714564800",
        "2024-05-01T12:00Z",
        "2024-05-01T12:00:60Z",  # a leap second: no datetime holds it
        "2024-02-30T12:00:00Z",
        "2024-05-01T12:00:00+0200",
        "\uff12\uff10\uff12\uff14-05-01T12:00:00Z",  # fullwidth digits
    ],
)
def test_other_times_are_refused_naming_the_parameter(text: str) -> None:
    detail = refusal(lambda: parse_time("until", text))
    assert detail.startswith("until: not an RFC 3339 time with a time zone")
    assert "%2B" not in detail


def test_a_plus_lost_in_the_url_gets_a_hint() -> None:
    detail = refusal(lambda: parse_time("since", "2024-05-01T14:00:00 02:00"))
    assert "%2B" in detail


def test_until_must_be_later_than_since() -> None:
    same = OccurrenceParameters(since="2024-05-01T12:00:00Z", until="2024-05-01T14:00:00+02:00")
    assert refusal(lambda: parse_filter(same)) == "until: must be later than since"


def test_a_filter_reads_back_from_its_parameters() -> None:
    selected = OccurrenceFilter(
        trigger_id="t-1",
        event_id="SAVED_PAYMENT:p-1",
        statuses=frozenset({OccurrenceStatus.FAILED, OccurrenceStatus.PENDING}),
        since=T0,
        until=T0 + timedelta(microseconds=1),
    )
    parameters = as_parameters(selected)
    assert parameters.status == "failed,pending"
    assert parameters.since == "2024-05-01T12:00:00.000000Z"
    assert parse_filter(parameters) == selected
    assert as_parameters(OccurrenceFilter()) == OccurrenceParameters()


def test_every_status_is_no_status_filter() -> None:
    assert parse_filter(OccurrenceParameters(status="failed,pending,succeeded")) == (
        OccurrenceFilter()
    )


def test_a_cursor_carries_the_filters_it_was_made_with() -> None:
    selected = parse_filter(
        OccurrenceParameters(trigger_id="t", status="failed", since="2024-05-01T12:00:00Z")
    )
    state = CursorState.of_occurrences("occurrences", 5, selected).towards(Direction.NEXT, "7")

    decoded = decode_cursor(encode_cursor(state), "occurrences")

    assert decoded == state
    assert decoded.occurrence_filter() == selected


@pytest.mark.parametrize(
    "widest", ["\U0001f600", "\x1f"], ids=["four bytes in UTF-8", "six escaped in JSON"]
)
def test_a_cursor_with_the_longest_filters_fits_the_cursor_limit(widest: str) -> None:
    selected = OccurrenceFilter(
        trigger_id=widest * MAX_TRIGGER_ID_LENGTH,
        event_id=widest * MAX_EVENT_ID_LENGTH,
        statuses=frozenset({OccurrenceStatus.PENDING, OccurrenceStatus.SUCCEEDED}),
        since=T0,
        until=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    )
    key = f"{'9' * 26}Z {2**63 - 1}"
    state = CursorState.of_occurrences("occurrences", MAX_PAGE_SIZE, selected)

    token = encode_cursor(state.towards(Direction.PREVIOUS, key))

    assert len(token) <= MAX_CURSOR_LENGTH


async def recorded(store: InMemoryStore) -> None:
    """Twelve occurrences of trigger t, one a minute; the third was recorded late (an earlier
    date than the second)."""
    for n in range(12):
        date = T0 + timedelta(minutes=n if n != 2 else 0, seconds=n)
        event = NewOccurrence("t", f"e-{n}", {"type": "SAVED_PAYMENT", "payload": {}}, date)
        await store.begin_occurrences([event])


@pytest.mark.parametrize(
    "selected",
    [OccurrenceFilter(trigger_id="t"), OccurrenceFilter(trigger_id="t", since=T0)],
    ids=["by seq", "by date"],
)
async def test_a_filtered_listing_pages_forward_then_back(selected: OccurrenceFilter) -> None:
    store = InMemoryStore()
    await recorded(store)
    source = OccurrenceQuery(store, selected)
    everything = await store.query_occurrences(selected, limit=100)

    first = await paginate(source, CursorState.of_occurrences("occurrences", 5, selected))
    assert first.next is not None
    second = await paginate(source, first.next)
    assert second.previous is not None
    back = await paginate(source, second.previous)

    assert [o.id for o in first.items] == [o.id for o in everything[:5]]
    assert [o.id for o in second.items] == [o.id for o in everything[5:10]]
    assert back.items == first.items
    assert first.previous is None


async def test_a_key_of_the_other_order_or_garbage_is_a_bad_cursor() -> None:
    store = InMemoryStore()
    by_seq = OccurrenceQuery(store, OccurrenceFilter())
    by_date = OccurrenceQuery(store, OccurrenceFilter(since=T0))

    for source, key in [
        (by_seq, "2024-05-01T12:00:00.000000Z 5"),
        (by_date, "5"),
        (by_date, "2024-05-01 5"),
        (by_seq, "-5"),
        (by_seq, "\uff15"),  # a fullwidth digit
        (by_date, "2024-05-01T12:00:00.000000Z x"),
    ]:
        with pytest.raises(HTTPException) as caught:
            await source.following(key, 5)
        assert "invalid cursor" in str(caught.value.detail)
