"""Weekly readers get the week's posts on the list's weekly day, not the daily editions."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.editions.dispatch import dispatch_due
from newsletter.editions.lifecycle import start_sending
from newsletter.models import (
    Delivery,
    Edition,
    Frequency,
    NewsletterList,
    Subscriber,
    Subscription,
)
from newsletter.posts.ingest import upsert_posts
from newsletter.subscriptions.service import Signup, subscribe
from tests.factories import post


@pytest.fixture
def readers(session: Session, daily_list: NewsletterList, now: datetime) -> None:
    subscribe(session, daily_list, Signup("daily@example.com"), now=now, confirmed=True,
              source="test")  # fmt: skip
    subscribe(session, daily_list, Signup("weekly@example.com"), now=now, confirmed=True,
              source="test", frequency=Frequency.WEEKLY)  # fmt: skip
    session.commit()


def recipients(session: Session, edition_id: int) -> list[str]:
    return list(
        session.scalars(
            select(Subscriber.email)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.edition_id == edition_id)
        )
    )


def on_weekly_day(nl: NewsletterList, now: datetime, session: Session) -> None:
    nl.weekly_day = now.weekday()
    session.commit()


def test_daily_edition_goes_to_daily_readers_only(
    session: Session, daily_list: NewsletterList, readers: None, now: datetime, settings: Settings
) -> None:
    upsert_posts(session, [post(1, now - timedelta(hours=3))])
    (edition_id,) = dispatch_due(session, now=now, settings=settings)
    start_sending(session, edition_id, now=now)
    assert recipients(session, edition_id) == ["daily@example.com"]


def test_weekly_day_brings_a_weekly_edition_for_weekly_readers(
    session: Session, daily_list: NewsletterList, readers: None, now: datetime, settings: Settings
) -> None:
    on_weekly_day(daily_list, now, session)
    upsert_posts(session, [post(1, now - timedelta(hours=3))])
    ready = dispatch_due(session, now=now, settings=settings)
    editions = {
        e.frequency: e for e in session.scalars(select(Edition).where(Edition.id.in_(ready)))
    }
    assert set(editions) == {Frequency.DAILY, Frequency.WEEKLY}
    weekly = editions[Frequency.WEEKLY]
    start_sending(session, weekly.id, now=now)
    assert recipients(session, weekly.id) == ["weekly@example.com"]
    assert "the week" in weekly.subject


def test_weekly_edition_holds_the_weeks_posts_even_if_dailies_carried_them(
    session: Session, daily_list: NewsletterList, readers: None, now: datetime, settings: Settings
) -> None:
    on_weekly_day(daily_list, now, session)
    upsert_posts(session, [post(i, now - timedelta(days=i, hours=3)) for i in range(6)])
    for days_ago in range(5, -1, -1):
        dispatch_due(session, now=now - timedelta(days=days_ago), settings=settings)
    weekly = session.scalars(select(Edition).where(Edition.frequency == Frequency.WEEKLY)).one()
    assert len(weekly.items) == 6


def test_no_weekly_edition_on_other_days(
    session: Session, daily_list: NewsletterList, readers: None, now: datetime, settings: Settings
) -> None:
    daily_list.weekly_day = (now.weekday() + 1) % 7
    session.commit()
    upsert_posts(session, [post(1, now - timedelta(hours=3))])
    dispatch_due(session, now=now, settings=settings)
    frequencies = set(session.scalars(select(Edition.frequency)))
    assert frequencies == {Frequency.DAILY}


def test_paused_reader_receives_nothing(
    session: Session, daily_list: NewsletterList, readers: None, now: datetime, settings: Settings
) -> None:
    for subscription in session.scalars(select(Subscription)):
        subscription.paused_at = now
    session.commit()
    upsert_posts(session, [post(1, now - timedelta(hours=3))])
    (edition_id,) = dispatch_due(session, now=now, settings=settings)
    assert start_sending(session, edition_id, now=now) == 0
