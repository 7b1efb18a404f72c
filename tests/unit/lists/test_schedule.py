"""A list's cron schedule read in its own timezone, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from newsletter.lists.schedule import (
    ScheduleError,
    due_days,
    edition_cutoff,
    local_date,
    scheduled_time,
    validate_schedule,
)

NEW_YORK = "America/New_York"
SEVEN_AM = "0 7 * * *"
WEEKDAYS = "0 7 * * 1-5"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        pytest.param(date(2025, 3, 8), utc(2025, 3, 8, 12), id="EST-before-spring-forward"),
        pytest.param(date(2025, 3, 9), utc(2025, 3, 9, 11), id="EDT-on-spring-forward-day"),
        pytest.param(date(2025, 3, 10), utc(2025, 3, 10, 11), id="EDT-after-spring-forward"),
        pytest.param(date(2025, 11, 1), utc(2025, 11, 1, 11), id="EDT-before-fall-back"),
        pytest.param(date(2025, 11, 2), utc(2025, 11, 2, 12), id="EST-on-fall-back-day"),
        pytest.param(date(2025, 11, 3), utc(2025, 11, 3, 12), id="EST-after-fall-back"),
    ],
)
def test_seven_am_in_new_york_is_the_right_utc_hour(day: date, expected: datetime) -> None:
    assert scheduled_time(SEVEN_AM, NEW_YORK, day) == expected


def test_scheduled_time_is_returned_in_utc() -> None:
    moment = scheduled_time(SEVEN_AM, NEW_YORK, date(2025, 3, 9))
    assert moment is not None
    assert moment.utcoffset() is not None
    assert moment.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_midnight_schedule_falls_on_its_own_day() -> None:
    assert scheduled_time("0 0 * * *", NEW_YORK, date(2025, 11, 2)) == utc(2025, 11, 2, 4)


def test_utc_list_is_scheduled_at_the_utc_hour() -> None:
    assert scheduled_time(SEVEN_AM, "UTC", date(2025, 5, 16)) == utc(2025, 5, 16, 7)


def test_schedule_that_skips_a_day_has_no_time_that_day() -> None:
    saturday = date(2025, 5, 17)
    assert scheduled_time(WEEKDAYS, NEW_YORK, saturday) is None


def test_schedule_that_skips_a_day_still_runs_on_weekdays() -> None:
    assert scheduled_time(WEEKDAYS, NEW_YORK, date(2025, 5, 16)) == utc(2025, 5, 16, 11)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        pytest.param(date(2025, 3, 9), utc(2025, 3, 9, 11), id="spring-forward"),
        pytest.param(date(2025, 11, 2), utc(2025, 11, 2, 12), id="fall-back"),
    ],
)
def test_edition_cutoff_is_the_scheduled_time_once_it_has_passed(
    day: date, expected: datetime
) -> None:
    later = utc(2025, 12, 31)
    assert edition_cutoff(SEVEN_AM, NEW_YORK, day, later) == expected


def test_edition_built_early_is_cut_off_at_now() -> None:
    early = utc(2025, 11, 2, 9, 15)
    assert edition_cutoff(SEVEN_AM, NEW_YORK, date(2025, 11, 2), early) == early


def test_edition_cutoff_on_a_skipped_day_is_the_end_of_the_local_day() -> None:
    saturday = date(2025, 5, 17)
    assert edition_cutoff(WEEKDAYS, NEW_YORK, saturday, utc(2025, 6, 1)) == utc(2025, 5, 18, 4)


def test_edition_cutoff_on_fall_back_skipped_day_spans_25_hours() -> None:
    # Sunday 2 November 2025 ends at midnight EST, 05:00 UTC on the 3rd.
    assert edition_cutoff(WEEKDAYS, NEW_YORK, date(2025, 11, 2), utc(2025, 12, 1)) == utc(
        2025, 11, 3, 5
    )


def is_due(expression: str, timezone: str, now: datetime) -> bool:
    """Whether the dispatcher sees today's (local) edition as due at ``now``."""
    today = local_date(timezone, now)
    return any(day == today for day, _ in due_days(expression, timezone, now, timedelta(0)))


def test_not_due_a_minute_before_the_scheduled_time() -> None:
    assert not is_due(SEVEN_AM, NEW_YORK, utc(2025, 3, 9, 10, 59))


def test_due_at_the_scheduled_time() -> None:
    assert is_due(SEVEN_AM, NEW_YORK, utc(2025, 3, 9, 11, 0))


def test_due_after_fall_back_only_at_the_new_utc_hour() -> None:
    assert not is_due(SEVEN_AM, NEW_YORK, utc(2025, 11, 2, 11, 30))
    assert is_due(SEVEN_AM, NEW_YORK, utc(2025, 11, 2, 12, 0))


def test_not_due_on_a_day_the_schedule_skips() -> None:
    assert not is_due(WEEKDAYS, NEW_YORK, utc(2025, 5, 17, 20))


def test_local_date_is_the_lists_calendar_day() -> None:
    # 02:00 UTC on the 16th is still the evening of the 15th in New York.
    assert local_date(NEW_YORK, utc(2025, 5, 16, 2)) == date(2025, 5, 15)


def test_valid_schedule_passes() -> None:
    validate_schedule(WEEKDAYS, NEW_YORK)


@pytest.mark.parametrize(
    "expression",
    ["every morning", "0 7 * *", "0 7 * * * *", "0 25 * * *", "61 7 * * *", "", "@daily"],
)
def test_invalid_cron_raises_with_a_clear_message(expression: str) -> None:
    with pytest.raises(ScheduleError, match="is not a five-field cron expression") as raised:
        validate_schedule(expression, "UTC")
    assert repr(expression) in str(raised.value)
    assert '"0 7 * * *"' in str(raised.value)


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "", "EST5EDT ", "../../etc/passwd"])
def test_invalid_timezone_raises_with_a_clear_message(timezone: str) -> None:
    with pytest.raises(ScheduleError, match="is not an IANA timezone name") as raised:
        validate_schedule(SEVEN_AM, timezone)
    assert repr(timezone) in str(raised.value)


@pytest.mark.parametrize("timezone", ["America", "Europe"])
def test_timezone_that_is_a_region_not_a_zone_raises_schedule_error(timezone: str) -> None:
    with pytest.raises(ScheduleError, match="is not an IANA timezone name"):
        validate_schedule(SEVEN_AM, timezone)


def test_cron_that_can_never_fire_is_refused() -> None:
    with pytest.raises(ScheduleError):
        validate_schedule("0 7 30 2 *", "UTC")


def test_cron_that_can_never_fire_is_never_due() -> None:
    assert not is_due("0 7 30 2 *", "UTC", utc(2025, 5, 16, 8))
