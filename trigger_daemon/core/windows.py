"""Time windows over record timestamps: `since` included, `until` excluded, and the times a
user writes for them (RFC 3339, or a duration back from now such as `24h` or `7d`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"(?:\d+[smhdw])+")
_PART = re.compile(r"(\d+)([smhdw])")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def parse_time(text: str, now: datetime) -> datetime:
    """An RFC 3339 time with its offset (`2024-05-01T00:00:00Z`), or a duration back from `now`
    (`90s`, `30m`, `24h`, `7d`, `2w`, or a sum such as `1d12h`). Raises ValueError saying
    which forms are accepted."""
    stripped = text.strip()
    if _DURATION.fullmatch(stripped):
        seconds = sum(int(count) * _UNITS[unit] for count, unit in _PART.findall(stripped))
        return now - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(stripped.replace("z", "Z"))
    except ValueError:
        moment = None
    if moment is None or "T" not in stripped.upper() or moment.tzinfo is None:
        raise ValueError(
            f"{text!r} is not a time: give RFC 3339 with an offset "
            "(2024-05-01T00:00:00Z) or a duration back from now (24h, 7d, 30m)"
        )
    return moment.astimezone(UTC)


class Place(Enum):
    BEFORE = "before"
    INSIDE = "inside"
    AFTER = "after"


@dataclass(frozen=True, slots=True)
class Window:
    """[since, until) in milliseconds since the epoch, as Kafka stamps records."""

    since_ms: int
    until_ms: int

    @classmethod
    def of(cls, since: datetime, until: datetime) -> Window:
        if since >= until:
            raise ValueError("since must be earlier than until")
        return cls(epoch_ms(since), epoch_ms(until))

    def place(self, timestamp_ms: int | None) -> Place:
        """Where a record stamped `timestamp_ms` falls; a record without a timestamp is
        before any window (it is skipped, never counted)."""
        if timestamp_ms is None or timestamp_ms < self.since_ms:
            return Place.BEFORE
        return Place.INSIDE if timestamp_ms < self.until_ms else Place.AFTER


def epoch_ms(moment: datetime) -> int:
    """Whole milliseconds, rounded up: a record (stamped in whole milliseconds) is at or after
    `moment` exactly when it is at or after this."""
    return -((_EPOCH - moment) // _MILLISECOND)


def from_epoch_ms(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)
