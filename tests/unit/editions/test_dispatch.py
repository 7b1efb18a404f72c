"""The dispatcher behind cron and beat: due lists get one edition a day, however often run."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.editions.dispatch import dispatch_due
from newsletter.models import Edition, NewsletterList
from newsletter.posts.ingest import upsert_posts
from tests.factories import post


def test_nothing_is_due_before_the_scheduled_time(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    early = now.replace(hour=6, minute=59)
    upsert_posts(session, [post(1, early - timedelta(hours=1))])
    assert dispatch_due(session, now=early, settings=settings) == []
    assert session.scalar(select(func.count()).select_from(Edition)) == 0


def test_due_list_gets_an_edition_ready_to_send(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    upsert_posts(session, [post(1, now - timedelta(hours=3))])
    ready = dispatch_due(session, now=now, settings=settings)
    edition = session.get(Edition, ready[0])
    assert edition is not None
    assert edition.edition_date == now.date()


def test_dispatching_twice_builds_one_edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    upsert_posts(session, [post(1, now - timedelta(hours=3))])
    first = dispatch_due(session, now=now, settings=settings)
    second = dispatch_due(session, now=now + timedelta(minutes=1), settings=settings)
    assert first == second
    assert session.scalar(select(func.count()).select_from(Edition)) == 1


def test_a_day_without_posts_is_recorded_as_skipped_not_retried(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    assert dispatch_due(session, now=now, settings=settings) == []
    edition = session.scalars(select(Edition)).one()
    assert edition.status == "skipped"
    assert "no new posts" in edition.skip_reason
