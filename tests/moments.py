"""Moments that have broken date arithmetic before, for tests that depend on the time of day.

Each is a (now, list timezone) pair. The lists in these tests send at 07:00 local time, so the
set covers just before and after the send, early morning, late evening, both sides of
midnight UTC, and the nights the clocks change in Europe and in the United States.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from newsletter.lists.schedule import local_date, scheduled_time

SEND_AT = "0 7 * * *"
# The time every in-process test runs at unless it says otherwise (the ``now`` fixture):
# just after the 07:00 UTC edition that follows the sample feed's posts.
TEST_NOW = datetime(2025, 5, 16, 7, 30, tzinfo=UTC)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


AROUND_THE_CLOCK = [
    pytest.param(_at("2025-05-16T00:30:00"), "UTC", id="00:30Z"),
    pytest.param(_at("2025-05-16T06:59:00"), "UTC", id="06:59Z"),
    pytest.param(_at("2025-05-16T07:01:00"), "UTC", id="07:01Z"),
    pytest.param(_at("2025-05-16T08:30:00"), "UTC", id="08:30Z"),
    pytest.param(_at("2025-05-16T23:59:00"), "UTC", id="23:59Z"),
    # The night Europe/London springs forward (01:00 UTC) and falls back (01:00 UTC).
    pytest.param(_at("2027-03-28T00:59:30"), "Europe/London", id="london-spring-forward"),
    pytest.param(_at("2027-10-31T00:59:30"), "Europe/London", id="london-fall-back"),
    # New York: 07:00 local is 11:00 UTC in summer, 12:00 in winter; the change is at 2 a.m.
    pytest.param(_at("2027-03-14T11:30:00"), "America/New_York", id="new-york-spring-forward"),
    pytest.param(_at("2027-11-07T11:30:00"), "America/New_York", id="new-york-fall-back"),
]


def inside_todays_window(now: datetime, timezone: str, schedule: str = SEND_AT) -> datetime:
    """A publication time that belongs to today's edition (local to the list) at ``now``:
    an hour before the list's send time, or before ``now`` if that comes first."""
    send = scheduled_time(schedule, timezone, local_date(timezone, now))
    assert send is not None
    return min(now, send) - timedelta(hours=1)
