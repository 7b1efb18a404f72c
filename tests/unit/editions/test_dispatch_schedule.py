"""The schedule's guarantees, with the dispatcher run on a controlled clock: one edition per
list per local day whatever the clocks do, at the first run at or after the list's time,
however many dispatchers race, late within the grace window and missed beyond it."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import session_factory
from newsletter.editions import service
from newsletter.editions.dispatch import dispatch_due
from newsletter.editions.lifecycle import start_sending
from newsletter.lists.service import ListSpec, create_list
from newsletter.models import (
    Delivery,
    Edition,
    EditionStatus,
    Frequency,
    NewsletterList,
    Post,
)
from newsletter.posts.ingest import upsert_posts
from newsletter.subscriptions.service import Signup, import_subscribers
from tests.factories import post

READERS = 3


def make_list(
    session: Session, slug: str, schedule: str, timezone: str, *, approval: bool = False
) -> NewsletterList:
    nl = create_list(
        session,
        ListSpec(slug=slug, name=slug.title(), from_address="digest@example.com",
                 schedule=schedule, timezone=timezone),
    )  # fmt: skip
    nl.requires_approval = approval
    import_subscribers(
        session,
        nl,
        [Signup(f"{slug}-{i}@example.com") for i in range(READERS)],
        now=datetime(2025, 1, 1, tzinfo=UTC),
        source="test",
    )
    session.commit()
    return nl


def run_dispatcher(session: Session, settings: Settings, now: datetime) -> list[int]:
    """One run of beat's task: what is due goes out (its delivery rows are written)."""
    due = dispatch_due(session, now=now, settings=settings)
    for edition_id in due:
        start_sending(session, edition_id, now=now)
    session.commit()
    session.expire_all()  # the next run is a unit of work of its own: it reads afresh
    return due


def publish(session: Session, number: int, at: datetime) -> None:
    upsert_posts(session, [post(number, at)])
    session.commit()


def daily_editions(session: Session, nl: NewsletterList) -> list[Edition]:
    return list(
        session.scalars(
            select(Edition)
            .where(Edition.list_id == nl.id, Edition.frequency == Frequency.DAILY)
            .order_by(Edition.edition_date)
        )
    )


def titles(edition: Edition) -> list[str]:
    return [item.post.title for item in edition.items]


def deliveries_of(session: Session, edition: Edition) -> int:
    return session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.edition_id == edition.id)
    ) or 0  # fmt: skip


# --- Daylight saving time ----------------------------------------------------------------


@dataclass
class Simulation:
    """A dispatcher run every ``every`` over the local days ``days``, with post number n
    published at 16:00 UTC on ``days[0] + n`` days: each edition should carry the one post
    of the day before it."""

    days: list[date]
    timezone: ZoneInfo
    every: timedelta
    sent_at: dict[int, datetime] = field(default_factory=dict)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.days[0], time.min, tzinfo=self.timezone).astimezone(UTC)

    @property
    def end(self) -> datetime:
        after = self.days[-1] + timedelta(days=1)
        return datetime.combine(after, time.min, tzinfo=self.timezone).astimezone(UTC)

    def post_of(self, day: date) -> str:
        return f"Story number {(day - self.days[0]).days}"

    def ticks(self) -> Iterator[datetime]:
        now = self.start
        while now < self.end:
            yield now
            now += self.every

    def first_run_at_or_after(self, moment: datetime) -> datetime:
        steps = -((self.start - moment) // self.every)  # ceiling division
        return self.start + steps * self.every

    def run(self, session: Session, settings: Settings) -> None:
        posts = [
            (n, datetime.combine(self.days[0] + timedelta(days=n), time(16), tzinfo=UTC))
            for n in range(-1, len(self.days))
        ]
        for now in self.ticks():
            while posts and posts[0][1] <= now:
                publish(session, *posts.pop(0))
            for edition_id in run_dispatcher(session, settings, now):
                self.sent_at[edition_id] = now


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# timezone, the first of three local days around a change, and for each list's schedule its
# time on each of those days, in UTC.
CLOCK_CHANGES = {
    "London, clocks forward (01:30 does not exist on the 30th)": (
        "Europe/London",
        date(2025, 3, 29),
        {
            "30 1 * * *": ["2025-03-29 01:30", "2025-03-30 01:00", "2025-03-31 00:30"],
            "0 7 * * *": ["2025-03-29 07:00", "2025-03-30 06:00", "2025-03-31 06:00"],
        },
    ),
    "London, clocks back (01:30 happens twice on the 26th)": (
        "Europe/London",
        date(2025, 10, 25),
        {
            "30 1 * * *": ["2025-10-25 00:30", "2025-10-26 00:30", "2025-10-27 01:30"],
            "0 7 * * *": ["2025-10-25 06:00", "2025-10-26 07:00", "2025-10-27 07:00"],
        },
    ),
    "New York, clocks forward (02:30 does not exist on the 9th)": (
        "America/New_York",
        date(2025, 3, 8),
        {
            "30 1 * * *": ["2025-03-08 06:30", "2025-03-09 06:30", "2025-03-10 05:30"],
            "30 2 * * *": ["2025-03-08 07:30", "2025-03-09 07:00", "2025-03-10 06:30"],
            "0 7 * * *": ["2025-03-08 12:00", "2025-03-09 11:00", "2025-03-10 11:00"],
        },
    ),
    "New York, clocks back (01:30 happens twice on the 2nd)": (
        "America/New_York",
        date(2025, 11, 1),
        {
            "30 1 * * *": ["2025-11-01 05:30", "2025-11-02 05:30", "2025-11-03 06:30"],
            "0 7 * * *": ["2025-11-01 11:00", "2025-11-02 12:00", "2025-11-03 12:00"],
        },
    ),
}


@pytest.mark.parametrize(
    ("change", "every"),
    [
        pytest.param(change, timedelta(minutes=minutes), id=f"{change}, run every {minutes} min")
        for change, minutes in zip(CLOCK_CHANGES, (3, 5, 5, 7), strict=True)
    ],
)
def test_one_edition_per_local_day_at_the_lists_time_across_a_clock_change(
    session: Session, settings: Settings, change: str, every: timedelta
) -> None:
    timezone, first_day, schedules = CLOCK_CHANGES[change]
    days = [first_day + timedelta(days=n) for n in range(3)]
    lists = {
        schedule: make_list(session, f"list-{n}", schedule, timezone)
        for n, schedule in enumerate(schedules)
    }
    tz = ZoneInfo(timezone)
    simulation = Simulation(days, tz, every)
    simulation.run(session, settings)

    for schedule, moments in schedules.items():
        editions = daily_editions(session, lists[schedule])
        assert [e.edition_date for e in editions] == days, schedule
        for edition, moment, day in zip(editions, moments, days, strict=True):
            expected = simulation.first_run_at_or_after(utc(moment))
            assert simulation.sent_at[edition.id] == expected, (schedule, day)
            assert edition.send_started_at == expected
            assert expected.astimezone(tz).date() == day, "sent on the wrong local day"
            assert titles(edition) == [simulation.post_of(day - timedelta(days=1))]
            assert deliveries_of(session, edition) == READERS
        # Each change falls on a Sunday, the day of the weekly edition: one of those too.
        [weekly] = session.scalars(
            select(Edition).where(
                Edition.list_id == lists[schedule].id, Edition.frequency == Frequency.WEEKLY
            )
        )
        assert weekly.edition_date == days[1]
        assert simulation.sent_at[weekly.id] == simulation.sent_at[editions[1].id]
    # Nothing else went out: a daily edition a day and the weekly one, per list.
    assert len(simulation.sent_at) == len(schedules) * (len(days) + 1)


def test_a_list_time_that_does_not_exist_goes_out_when_the_clocks_jump(
    session: Session, settings: Settings
) -> None:
    nl = make_list(session, "early", "30 1 * * *", "Europe/London")
    nl.weekly_day = 0  # the weekly edition, on Mondays, is not what this test is about
    session.commit()
    publish(session, 1, utc("2025-03-29 16:00"))
    before_the_jump = utc("2025-03-30 00:59")  # 00:59 GMT: 01:30 has not come
    assert run_dispatcher(session, settings, before_the_jump) == []
    at_the_jump = utc("2025-03-30 01:00")  # 01:00 GMT is 02:00 BST: 01:30 was skipped
    [edition_id] = run_dispatcher(session, settings, at_the_jump)
    later_that_day = [at_the_jump + timedelta(minutes=m) for m in range(1, 22 * 60, 7)]
    assert all(run_dispatcher(session, settings, now) == [] for now in later_that_day)
    [edition] = daily_editions(session, nl)
    assert edition.id == edition_id
    assert edition.edition_date == date(2025, 3, 30)


# --- Several dispatchers at once ---------------------------------------------------------


def dispatchers_at_once(database_url: str, settings: Settings, now: datetime) -> list[Exception]:
    """Two dispatchers, each with a session of its own, set off at the same instant."""
    new_session = session_factory(database_url)
    barrier = threading.Barrier(2)
    failures: list[Exception] = []

    def dispatcher() -> None:
        with new_session() as own:
            try:
                barrier.wait(timeout=10)
                run_dispatcher(own, settings, now)
            except Exception as error:  # the test asserts there were none
                failures.append(error)

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return failures


def test_racing_dispatchers_send_each_edition_once_to_each_reader(
    session: Session, settings: Settings, database_url: str
) -> None:
    lists = [make_list(session, f"race-{n}", "0 7 * * *", "UTC") for n in range(2)]
    early_bird = lists[0]
    days = [date(2025, 5, 12) + timedelta(days=n) for n in range(4)]
    for number, day in enumerate(days):
        publish(session, number, datetime.combine(day, time(5), tzinfo=UTC))
        if number % 2:
            # An editor opened today's draft early: both dispatchers find it at 07:00.
            service.todays_edition(
                session, early_bird, now=datetime.combine(day, time(5, 30), tzinfo=UTC),
                settings=settings,
            )  # fmt: skip
            session.commit()
            publish(session, 100 + number, datetime.combine(day, time(6), tzinfo=UTC))
        now = datetime.combine(day, time(7), tzinfo=UTC)
        assert dispatchers_at_once(database_url, settings, now) == []

    session.expire_all()
    for nl in lists:
        editions = daily_editions(session, nl)
        assert [e.edition_date for e in editions] == days
        assert all(e.status == EditionStatus.SENDING for e in editions)
        assert all(deliveries_of(session, e) == READERS for e in editions)
    per_reader = Counter(session.execute(select(Delivery.edition_id, Delivery.subscriber_id)).all())
    assert set(per_reader.values()) == {1}
    assert len(per_reader) == len(lists) * len(days) * READERS
    refreshed = daily_editions(session, early_bird)[1]
    assert titles(refreshed) == ["Story number 101", "Story number 1"]


# --- Downtime and the grace window -------------------------------------------------------


@pytest.fixture
def utc_list(session: Session) -> NewsletterList:
    return make_list(session, "morning", "0 7 * * *", "UTC")


MAY_16 = utc("2025-05-16 07:00")


def test_a_dispatcher_back_within_the_grace_window_sends_late(
    session: Session, settings: Settings, utc_list: NewsletterList
) -> None:
    publish(session, 1, MAY_16 - timedelta(hours=3))
    assert run_dispatcher(session, settings, MAY_16 - timedelta(minutes=5)) == []
    back = MAY_16 + timedelta(minutes=settings.dispatch_grace_minutes - 1)
    [edition_id] = run_dispatcher(session, settings, back)
    edition = session.get(Edition, edition_id)
    assert edition is not None
    assert edition.send_started_at == back
    assert deliveries_of(session, edition) == READERS


def test_a_dispatcher_back_after_the_grace_window_records_the_edition_missed(
    session: Session, settings: Settings, utc_list: NewsletterList
) -> None:
    publish(session, 1, MAY_16 - timedelta(hours=3))
    back = MAY_16 + timedelta(minutes=settings.dispatch_grace_minutes + 1)
    assert run_dispatcher(session, settings, back) == []
    [edition] = daily_editions(session, utc_list)
    assert edition.status == EditionStatus.MISSED
    assert "beyond the grace window" in edition.skip_reason
    assert "2025-05-16 07:00 UTC" in edition.skip_reason
    assert deliveries_of(session, edition) == 0


def test_a_missed_days_posts_go_into_the_next_days_edition(
    session: Session, settings: Settings, utc_list: NewsletterList
) -> None:
    publish(session, 1, MAY_16 - timedelta(days=1, hours=3))
    run_dispatcher(session, settings, MAY_16 - timedelta(days=1))  # the 15th goes out
    publish(session, 2, MAY_16 - timedelta(hours=3))
    run_dispatcher(session, settings, MAY_16 + timedelta(hours=5))  # the 16th is missed
    publish(session, 3, MAY_16 + timedelta(hours=6))
    [edition_id] = run_dispatcher(session, settings, MAY_16 + timedelta(days=1))
    edition = session.get(Edition, edition_id)
    assert edition is not None
    assert edition.edition_date == date(2025, 5, 17)
    assert sorted(titles(edition)) == ["Story number 2", "Story number 3"]


def test_a_late_evening_edition_still_goes_out_late_after_midnight(
    session: Session, settings: Settings
) -> None:
    nl = make_list(session, "night", "30 23 * * *", "UTC")
    publish(session, 1, utc("2025-05-16 20:00"))
    assert run_dispatcher(session, settings, utc("2025-05-16 23:00")) == []
    back = utc("2025-05-17 00:20")  # 50 minutes late, on the next day
    [edition_id] = run_dispatcher(session, settings, back)
    [edition] = daily_editions(session, nl)
    assert edition.id == edition_id
    assert edition.edition_date == date(2025, 5, 16)
    assert edition.send_started_at == back


def test_a_day_entirely_lost_to_downtime_leaves_its_posts_to_the_next_edition(
    session: Session, settings: Settings, utc_list: NewsletterList
) -> None:
    publish(session, 1, MAY_16 - timedelta(days=1, hours=3))
    run_dispatcher(session, settings, MAY_16 - timedelta(days=1))
    publish(session, 2, MAY_16 - timedelta(hours=3))
    # Down from before the 16th's time until the 17th's.
    [edition_id] = run_dispatcher(session, settings, MAY_16 + timedelta(days=1))
    edition = session.get(Edition, edition_id)
    assert edition is not None
    assert edition.edition_date == date(2025, 5, 17)
    assert titles(edition) == ["Story number 2"]


# --- Editors in the loop -----------------------------------------------------------------


def test_a_list_needing_approval_waits_as_a_draft(session: Session, settings: Settings) -> None:
    nl = make_list(session, "approved", "0 7 * * *", "UTC", approval=True)
    publish(session, 1, MAY_16 - timedelta(hours=3))
    for minutes in range(0, 60, 5):
        assert run_dispatcher(session, settings, MAY_16 + timedelta(minutes=minutes)) == []
    [edition] = daily_editions(session, nl)
    assert edition.status == EditionStatus.DRAFT
    assert deliveries_of(session, edition) == 0


def test_an_approved_draft_goes_out_at_the_time_the_editor_chose(
    session: Session, settings: Settings
) -> None:
    nl = make_list(session, "approved", "0 7 * * *", "UTC", approval=True)
    publish(session, 1, MAY_16 - timedelta(hours=3))
    run_dispatcher(session, settings, MAY_16)
    [edition] = daily_editions(session, nl)
    service.schedule(
        session, edition, MAY_16 + timedelta(hours=1), now=MAY_16 + timedelta(minutes=20)
    )
    session.commit()
    assert run_dispatcher(session, settings, MAY_16 + timedelta(minutes=59)) == []
    assert run_dispatcher(session, settings, MAY_16 + timedelta(hours=1)) == [edition.id]
    assert deliveries_of(session, edition) == READERS


def test_a_draft_never_approved_is_missed_after_the_grace_window(
    session: Session, settings: Settings
) -> None:
    nl = make_list(session, "approved", "0 7 * * *", "UTC", approval=True)
    publish(session, 1, MAY_16 - timedelta(hours=3))
    run_dispatcher(session, settings, MAY_16)
    late = MAY_16 + timedelta(minutes=settings.dispatch_grace_minutes + 1)
    assert run_dispatcher(session, settings, late) == []
    [edition] = daily_editions(session, nl)
    assert edition.status == EditionStatus.MISSED
    assert "beyond the grace window" in edition.skip_reason
    assert deliveries_of(session, edition) == 0


def test_an_early_draft_gets_the_later_posts_and_goes_out_at_the_lists_time(
    session: Session, settings: Settings, utc_list: NewsletterList
) -> None:
    publish(session, 1, MAY_16 - timedelta(hours=3))
    draft = service.todays_edition(
        session, utc_list, now=MAY_16 - timedelta(hours=2), settings=settings
    ).edition
    session.commit()
    assert draft.status == EditionStatus.DRAFT
    assert titles(draft) == ["Story number 1"]
    publish(session, 2, MAY_16 - timedelta(minutes=30))
    publish(session, 3, MAY_16 + timedelta(minutes=1))  # after the list's time: tomorrow's
    assert run_dispatcher(session, settings, MAY_16 - timedelta(minutes=1)) == []
    assert run_dispatcher(session, settings, MAY_16 + timedelta(minutes=2)) == [draft.id]
    session.refresh(draft)
    assert titles(draft) == ["Story number 2", "Story number 1"]
    assert draft.send_started_at == MAY_16 + timedelta(minutes=2)
    assert deliveries_of(session, draft) == READERS
    assert session.scalar(select(func.count()).select_from(Post)) == 3
