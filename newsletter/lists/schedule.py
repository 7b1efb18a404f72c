"""When a list's edition is due: its cron expression read in its own timezone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter


class ScheduleError(ValueError):
    """A cron expression or timezone that cannot be used; the message says which."""


def validate_schedule(expression: str, timezone: str) -> None:
    if not croniter.is_valid(expression) or len(expression.split()) != 5:
        raise ScheduleError(
            f"{expression!r} is not a five-field cron expression (minute hour day month weekday), "
            'e.g. "0 7 * * *" for 07:00 every day'
        )
    try:
        croniter(expression).get_next(datetime)
    except CroniterBadDateError:
        raise ScheduleError(f"{expression!r} never fires (e.g. February 30th)") from None
    zone(timezone)


def zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "America" is a folder
        raise ScheduleError(
            f"{timezone!r} is not an IANA timezone name such as Europe/London"
        ) from None


def local_date(timezone: str, now: datetime) -> date:
    return now.astimezone(zone(timezone)).date()


def scheduled_time(expression: str, timezone: str, day: date) -> datetime | None:
    """The first scheduled moment on ``day`` in the list's timezone, as UTC; None if none."""
    tz = zone(timezone)
    start = datetime.combine(day, time.min, tzinfo=tz)
    # croniter.get_next is exclusive; step back a second to include midnight itself.
    try:
        moment: datetime = croniter(expression, start - timedelta(seconds=1)).get_next(datetime)
    except CroniterBadDateError:  # a schedule that never fires
        return None
    if moment.astimezone(tz).date() != day:
        return None
    return moment.astimezone(UTC)


def edition_cutoff(expression: str, timezone: str, day: date, now: datetime) -> datetime:
    """Posts published up to this moment belong to ``day``'s edition.

    The scheduled send time of that day (end of the day when the schedule skips it), but
    never later than ``now``: an edition built early holds what has been published so far.
    """
    moment = scheduled_time(expression, timezone, day)
    if moment is None:
        moment = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone(timezone))
    return min(moment.astimezone(UTC), now.astimezone(UTC))


def due_days(
    expression: str, timezone: str, now: datetime, grace: timedelta
) -> list[tuple[date, datetime]]:
    """The local days whose edition the dispatcher must see to at ``now``, with their moments.

    Today once its moment has passed, and yesterday while its moment is within ``grace``: an
    evening edition whose dispatcher was down over midnight still goes out late. Older days
    are left alone, so a list's first run does not record editions from before it existed.
    """
    today = local_date(timezone, now)
    days = []
    for day in (today - timedelta(days=1), today):
        moment = scheduled_time(expression, timezone, day)
        if moment is not None and moment <= now and (day == today or now - moment <= grace):
            days.append((day, moment))
    return days
