"""The SQL of `Store.query_occurrences`: one index range per filter shape, read from its end.

Each shape has an index whose leading columns are the filter's equalities and whose last ones
are the listing's order (`seq`, or `date, seq` with a time window; see OccurrenceFilter):

    event (with anything)          ix_occurrences_event              a handful of rows, sorted
    trigger + time window          ix_occurrences_trigger_date_seq   status filtered on top
    trigger + statuses             ix_occurrences_trigger_status_seq one range per status
    trigger                        ix_occurrences_trigger_seq
    time window                    ix_occurrences_date_seq           status filtered on top
    statuses                       ix_occurrences_status_seq         one range per status
    nothing                        the primary key (seq)

Several statuses are read as one range each, merged: `status IN (…)` would leave no index
that yields the order. The scan starts at the cursor (or the window's end) and stops at the
window's start, so a page reads about a page of rows, wherever in the history it is: each end
of the range is one bound (the cursor or the window's edge, whichever is tighter, chosen
here), since an index scan given two bounds on one side may start from the looser one.

On PostgreSQL the leading equality is written `c = ANY (ARRAY[v])` and a second one as a
range (`status >= s AND status <= s`), and the order names them. Given a plain `trigger_id = t
ORDER BY seq`, PostgreSQL may walk another index that gives the remaining order (the primary
key, or `date, seq`) backwards from the newest row, filtering on trigger_id: it assumes a
trigger's rows are spread evenly, and for a trigger whose rows are all old it then reads most
of the table (bench/explain_occurrences.py shows it). Neither form is an equality to the
planner, so the order stays one that only the filter's index gives; the index scan still
treats `= ANY` as an equality, so the bounds on the following columns end the scan. SQLite
picks the index with the most equalities and needs no such care.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, any_, literal, select, tuple_, union_all
from sqlalchemy.dialects.postgresql import array

from trigger_daemon.adapters.store.schema import occurrences
from trigger_daemon.core.occurrences import OccurrenceFilter, OccurrenceKey

_Column = ColumnElement[Any]
_Prefix = list[tuple[_Column, str]]


def occurrence_query(
    dialect: str,
    selected: OccurrenceFilter,
    limit: int,
    before: OccurrenceKey | None,
    after: OccurrenceKey | None,
) -> Select[Any]:
    """The occurrences `selected` admits between the cursors, newest first (oldest first when
    paging towards newer rows, after `after`)."""
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    for key in (before, after):
        if key is not None and (key.date is not None) != selected.by_date:
            raise ValueError(f"{key} is not a key of this listing's order")
    c = occurrences.c
    order: list[_Column] = [c.date, c.seq] if selected.by_date else [c.seq]
    filters: list[ColumnElement[bool]] = []
    prefix: _Prefix = []
    if selected.event_id is not None:
        filters.append(c.event_id == selected.event_id)
        if selected.trigger_id is not None:
            filters.append(c.trigger_id == selected.trigger_id)
    elif selected.trigger_id is not None:
        prefix.append((c.trigger_id, selected.trigger_id))
    statuses = sorted(str(status) for status in selected.statuses)
    prefixes = [prefix]
    if statuses and (selected.event_id is not None or selected.by_date):
        filters.append(c.status.in_(statuses))
    elif statuses:  # one range per status
        prefixes = [[*prefix, (c.status, status)] for status in statuses]
    bounds = _bounds(order, selected, before, after)
    ranges = [
        select(occurrences)
        .where(*_equalities(dialect, part), *bounds, *filters)
        .order_by(*_direction([*_ordered(dialect, part), *order], after))
        .limit(limit)
        for part in prefixes
    ]
    if len(ranges) == 1:
        return ranges[0]
    merged = union_all(*(select(part.subquery()) for part in ranges)).subquery()
    merged_order: list[_Column] = [merged.c[str(column.key)] for column in order]
    return select(merged).order_by(*_direction(merged_order, after)).limit(limit)


def _equalities(dialect: str, prefix: _Prefix) -> list[ColumnElement[bool]]:
    if dialect != "postgresql":
        return [column == value for column, value in prefix]
    conditions: list[ColumnElement[bool]] = []
    for position, (column, value) in enumerate(prefix):
        bound = literal(value, column.type)
        if position == 0:  # an array condition on a later column would lose the order
            conditions.append(column == any_(array([bound])))
        else:
            conditions.extend([column >= bound, column <= bound])
    return conditions


def _ordered(dialect: str, prefix: _Prefix) -> list[_Column]:
    """The prefix columns the order names: on PostgreSQL, all of them (see the docstring)."""
    return [column for column, _ in prefix] if dialect == "postgresql" else []


def _direction(columns: list[_Column], after: OccurrenceKey | None) -> list[Any]:
    if after is not None:
        return [column.asc() for column in columns]
    return [column.desc() for column in columns]


def _bounds(
    order: list[_Column],
    selected: OccurrenceFilter,
    before: OccurrenceKey | None,
    after: OccurrenceKey | None,
) -> list[ColumnElement[bool]]:
    """One bound at each end of the order's range: the cursor, or the window's edge where the
    cursor lies outside the window (a window's edge alone selects the same rows then)."""
    date = occurrences.c.date
    bounds: list[ColumnElement[bool]] = []
    if before is not None and (
        selected.until is None or before.date is None or before.date < selected.until
    ):
        bounds.append(_compare(order, _key_values(before), "<"))
    elif selected.until is not None:
        bounds.append(date < literal(selected.until, date.type))
    if after is not None and (
        selected.since is None or after.date is None or after.date >= selected.since
    ):
        bounds.append(_compare(order, _key_values(after), ">"))
    elif selected.since is not None:
        bounds.append(date >= literal(selected.since, date.type))
    return bounds


def _key_values(key: OccurrenceKey) -> list[object]:
    return [key.seq] if key.date is None else [key.date, key.seq]


def _compare(columns: list[_Column], values: list[object], operator: str) -> ColumnElement[bool]:
    """`columns operator values`, as a row comparison when there are several; each value is
    bound with its column's type (dates are stored differently by each backend)."""
    bound = [literal(value, column.type) for column, value in zip(columns, values, strict=True)]
    left: Any = columns[0] if len(columns) == 1 else tuple_(*columns)
    right: Any = bound[0] if len(bound) == 1 else tuple_(*bound)
    comparison: ColumnElement[bool] = left < right if operator == "<" else left > right
    return comparison
