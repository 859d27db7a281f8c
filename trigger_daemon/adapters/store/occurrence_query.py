"""The SQL of `Store.query_occurrences`: one index range per filter shape, read from its end.

Each shape has an index whose leading columns are the filter's equalities and whose last ones
are the listing's order (`seq`, or `date, seq` with a time window; see OccurrenceFilter):

    event (with anything)          ix_occurrences_event       a handful of rows, sorted
    trigger + time window          ix_occurrences_trigger_date_seq   status filtered on top
    trigger + statuses             ix_occurrences_trigger_status_seq one range per status
    trigger                        ix_occurrences_trigger_seq
    time window                    ix_occurrences_date_seq    status filtered on top
    statuses                       ix_occurrences_status_seq  one range per status
    nothing                        the primary key (seq)

Several statuses are read as one range each, merged: `status IN (…)` would leave no index
that yields the order. On PostgreSQL the equalities are written as ranges (`trigger_id >= t
AND trigger_id <= t`) or row comparisons (`(trigger_id, status) >= (t, s)`): a plain `=`
makes the column constant to the planner, and it may then walk another index that gives the
remaining order (the primary key, or `date, seq`) filtering on the column, which reads most of
the table for rows that are all old (queries.occurrence_page_query, bench/explain_occurrences.py).
Row comparisons also bound the time window and the cursor inside the range, so the scan starts
at the cursor and stops at the window's start. SQLite picks the index with the most
equalities and starts at the cursor with `=`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, literal, select, tuple_, union_all

from trigger_daemon.adapters.store.schema import occurrences
from trigger_daemon.core.occurrences import OccurrenceFilter, OccurrenceKey

_Column = ColumnElement[Any]
_Prefix = list[tuple[_Column, object]]


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
    if selected.event_id is not None:
        filters.append(c.event_id == selected.event_id)
        if selected.trigger_id is not None:
            filters.append(c.trigger_id == selected.trigger_id)
    prefixes: list[_Prefix] = [[]]
    if selected.event_id is None and selected.trigger_id is not None:
        prefixes = [[(c.trigger_id, selected.trigger_id)]]
    statuses = sorted(str(status) for status in selected.statuses)
    if statuses and (selected.event_id is not None or selected.by_date):
        filters.append(c.status.in_(statuses))
    elif statuses:  # one range per status
        prefixes = [[*prefixes[0], (c.status, status)] for status in statuses]
    ranges = [
        _range(dialect, prefix, order, selected, limit, before, after).where(*filters)
        for prefix in prefixes
    ]
    if len(ranges) == 1:
        return ranges[0]
    merged = union_all(*(select(part.subquery()) for part in ranges)).subquery()
    merged_order = [merged.c[str(column.key)] for column in order]
    return (
        select(merged)
        .order_by(*(col.asc() if after is not None else col.desc() for col in merged_order))
        .limit(limit)
    )


def _range(
    dialect: str,
    prefix: _Prefix,
    order: list[_Column],
    selected: OccurrenceFilter,
    limit: int,
    before: OccurrenceKey | None,
    after: OccurrenceKey | None,
) -> Select[Any]:
    """One index range: `prefix` (column, value) equalities, then `order`, read from its end."""
    c = occurrences.c
    fixed = [column for column, _ in prefix]
    values = [value for _, value in prefix]
    query = select(occurrences).limit(limit)
    if dialect == "postgresql":
        query = query.where(*_postgres_bounds(fixed, values, selected, before, after))
        order_by = [*fixed, *order]
    else:
        query = query.where(*(column == value for column, value in prefix))
        if selected.since is not None:
            query = query.where(c.date >= selected.since)
        if selected.until is not None:
            query = query.where(c.date < selected.until)
        if before is not None:
            query = query.where(_compare(order, _key_values(before), "<"))
        if after is not None:
            query = query.where(_compare(order, _key_values(after), ">"))
        order_by = order
    if after is not None:
        return query.order_by(*(column.asc() for column in order_by))
    return query.order_by(*(column.desc() for column in order_by))


def _postgres_bounds(
    fixed: list[_Column],
    values: list[object],
    selected: OccurrenceFilter,
    before: OccurrenceKey | None,
    after: OccurrenceKey | None,
) -> list[ColumnElement[bool]]:
    """The range as lower and upper bounds on the index's leading columns (see the module's
    docstring), each one a comparison the index scan can start or stop at."""
    c = occurrences.c
    date: list[_Column] = [c.date]
    order: list[_Column] = [c.date, c.seq] if selected.by_date else [c.seq]
    bounds: list[ColumnElement[bool]] = []
    if selected.since is not None:
        bounds.append(_compare([*fixed, *date], [*values, selected.since], ">="))
    elif fixed:
        bounds.append(_compare(fixed, values, ">="))
    if selected.until is not None:
        bounds.append(_compare([*fixed, *date], [*values, selected.until], "<"))
    elif fixed:
        bounds.append(_compare(fixed, values, "<="))
    if before is not None:
        bounds.append(_compare([*fixed, *order], [*values, *_key_values(before)], "<"))
    if after is not None:
        bounds.append(_compare([*fixed, *order], [*values, *_key_values(after)], ">"))
    return bounds


def _key_values(key: OccurrenceKey) -> list[object]:
    return [key.seq] if key.date is None else [key.date, key.seq]


def _compare(columns: list[_Column], values: list[object], operator: str) -> ColumnElement[bool]:
    """`columns operator values`, as a row comparison when there are several; each value is
    bound with its column's type (dates are stored differently by each backend)."""
    bound = [literal(value, column.type) for column, value in zip(columns, values, strict=True)]
    left: Any = columns[0] if len(columns) == 1 else tuple_(*columns)
    right: Any = bound[0] if len(bound) == 1 else tuple_(*bound)
    comparison: ColumnElement[bool] = {
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[operator]
    return comparison
