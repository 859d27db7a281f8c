"""Backtest times and windows: what a user may write, and which records a window holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trigger_daemon.core.windows import Place, Window, epoch_ms, from_epoch_ms, parse_time

NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T00:00:00Z", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T00:00:00z", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T02:00:00+02:00", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T00:00:00.250Z", datetime(2024, 5, 1, 0, 0, 0, 250_000, tzinfo=UTC)),
        ("90s", NOW - timedelta(seconds=90)),
        ("30m", NOW - timedelta(minutes=30)),
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        ("1d12h", NOW - timedelta(hours=36)),
        (" 24h ", NOW - timedelta(hours=24)),
    ],
)
def test_times_are_rfc3339_or_a_duration_back_from_now(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize(
    "text",
    ["yesterday", "", "24", "h", "-1d", "1.5h", "24 h", "2024-05-01", "2024-05-01T00:00:00"],
)
def test_anything_else_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339") as refused:
        parse_time(text, NOW)
    assert "24h" in str(refused.value)


def test_a_parsed_time_is_in_utc() -> None:
    moment = parse_time("2024-05-01T02:00:00+02:00", NOW)
    assert moment.tzinfo == UTC


def test_a_window_holds_since_and_not_until() -> None:
    window = Window(since_ms=1_000, until_ms=2_000)

    assert window.place(999) is Place.BEFORE
    assert window.place(1_000) is Place.INSIDE
    assert window.place(1_999) is Place.INSIDE
    assert window.place(2_000) is Place.AFTER
    assert window.place(None) is Place.BEFORE  # no timestamp: never counted


def test_milliseconds_round_up_so_a_fraction_never_widens_the_window() -> None:
    since = datetime(2024, 5, 1, 0, 0, 1, 500, tzinfo=UTC)  # 1000.5 ms after the minute
    window = Window.of(since, since + timedelta(seconds=1))
    whole = epoch_ms(datetime(2024, 5, 1, 0, 0, 1, tzinfo=UTC))

    assert window.place(whole) is Place.BEFORE  # stamped before `since`
    assert window.place(whole + 1) is Place.INSIDE
    assert epoch_ms(datetime(2024, 5, 1, tzinfo=UTC)) == 1_714_521_600_000
    assert from_epoch_ms(1_714_521_600_000) == datetime(2024, 5, 1, tzinfo=UTC)


def test_a_window_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="earlier"):
        Window.of(NOW, NOW)
