"""The occurrence listings' filter parameters: from query text to an OccurrenceFilter and back.

`status` takes several comma-separated values in one parameter (`?status=pending,failed`):
a repeated parameter is refused before any handler runs (limits.py). `since` and `until` are
RFC 3339 times with a time zone (`Z` or `±hh:mm`); a time without one is refused rather than
guessed at. A cursor carries the filter as the same text (`as_parameters`), and is read back
through the same parser, so a page from a cursor selects what the first page selected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import HTTPException

from trigger_daemon.core.occurrences import OccurrenceFilter, OccurrenceStatus

STATUSES = ", ".join(status.value for status in OccurrenceStatus)
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


@dataclass(frozen=True, slots=True)
class OccurrenceParameters:
    """The filter parameters of a request, as sent (None: not sent)."""

    trigger_id: str | None = None
    event_id: str | None = None
    status: str | None = None
    since: str | None = None
    until: str | None = None


def parse_filter(parameters: OccurrenceParameters) -> OccurrenceFilter:
    """The filter the parameters ask for, or a 400 naming the first bad parameter."""
    since = None if parameters.since is None else parse_time("since", parameters.since)
    until = None if parameters.until is None else parse_time("until", parameters.until)
    if since is not None and until is not None and until <= since:
        raise HTTPException(400, "until: must be later than since")
    statuses = frozenset() if parameters.status is None else parse_statuses(parameters.status)
    return OccurrenceFilter(
        trigger_id=parameters.trigger_id,
        event_id=parameters.event_id,
        statuses=statuses,
        since=since,
        until=until,
    )


def as_parameters(selected: OccurrenceFilter) -> OccurrenceParameters:
    """The parameters that ask for `selected` (parse_filter reads them back to it)."""
    statuses = sorted(status.value for status in selected.statuses)
    return OccurrenceParameters(
        trigger_id=selected.trigger_id,
        event_id=selected.event_id,
        status=",".join(statuses) or None,
        since=None if selected.since is None else format_time(selected.since),
        until=None if selected.until is None else format_time(selected.until),
    )


def parse_statuses(text: str) -> frozenset[OccurrenceStatus]:
    statuses = set()
    for item in text.split(","):
        name = item.strip()
        try:
            statuses.add(OccurrenceStatus(name))
        except ValueError:
            raise HTTPException(400, f"status: {name!r} is not one of {STATUSES}") from None
    return frozenset(statuses)


def parse_time(parameter: str, text: str) -> datetime:
    """An RFC 3339 time with its zone, as an aware UTC datetime (to the microsecond)."""
    if _RFC3339.fullmatch(text):
        try:
            return datetime.fromisoformat(text.upper()).astimezone(UTC)
        except ValueError:  # a day or an hour out of range, a leap second
            pass
    hint = " (a '+' in a URL must be sent as %2B)" if " " in text else ""
    raise HTTPException(
        400,
        f"{parameter}: not an RFC 3339 time with a time zone, like 2024-05-01T12:00:00Z or "
        f"2024-05-01T14:00:00+02:00{hint}",
    )


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
