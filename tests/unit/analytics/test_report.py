"""The edition report and a list's trend, from rows made by sending editions and applying
what came back; click counts are set on the rows the flush would have written."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.analytics.report import EditionReport, click_hours, edition_report, list_trend
from newsletter.config import Settings
from newsletter.delivery.fanout import pending_batches
from newsletter.delivery.transports import MemoryTransport
from newsletter.editions.build import build_edition
from newsletter.editions.lifecycle import start_sending
from newsletter.editions.sending import run_batch
from newsletter.inbound.stats import outcomes_of_editions
from newsletter.models import (
    ClickHour,
    Edition,
    EditionEngagement,
    NewsletterList,
    TrackedLink,
)
from newsletter.posts.ingest import upsert_posts
from newsletter.subscriptions.consent import Client
from newsletter.subscriptions.readers import unsubscribe
from newsletter.subscriptions.service import Signup, import_subscribers
from tests.factories import post
from tests.returns import complaint, hard_bounce, reader_id, sent_edition, soft_bounce

READERS = ["ann@example.com", "bob@example.com", "cat@example.com", "dan@example.com"]


@pytest.fixture
def edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> Edition:
    """An edition of three stories with tracked links, sent to four readers at ``now``."""
    return sent_edition(session, daily_list, READERS, now=now, settings=settings)


def report_of(session: Session, edition: Edition) -> EditionReport:
    session.expire_all()
    found = edition_report(session, edition.id, outcomes_of=outcomes_of_editions)
    assert found is not None
    return found


def links(session: Session, edition: Edition) -> dict[int, TrackedLink]:
    """The edition's links by their story's place in the email."""
    rows = session.scalars(select(TrackedLink).where(TrackedLink.edition_id == edition.id))
    return {link.position: link for link in rows}


def clicked(
    session: Session, edition: Edition, by_position: dict[int, tuple[int, int]], clickers: int
) -> None:
    """What a flush would have written: (human, machine) clicks per story, unique clickers."""
    for position, link in links(session, edition).items():
        link.human_clicks, link.machine_clicks = by_position.get(position, (0, 0))
    session.add(EditionEngagement(edition_id=edition.id, unique_clickers=clickers))
    session.commit()


def leave(session: Session, edition: Edition, email: str, source: str, at: datetime) -> None:
    unsubscribe(
        session, reader_id(session, email), edition.list_id, client=Client(source=source), now=at
    )
    session.commit()


def test_the_report_counts_what_reached_readers_and_what_came_back(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ann@example.com", settings=settings, now=now)
    soft_bounce(session, edition, "bob@example.com", settings=settings, now=now)
    complaint(session, edition, "cat@example.com", settings=settings, now=now)
    leave(session, edition, "dan@example.com", "one-click", now + timedelta(hours=1))

    report = report_of(session, edition)

    assert (report.delivered, report.bounced_hard, report.bounced_soft) == (4, 1, 1)
    assert report.complaints == 1  # and not an unsubscribe as well
    assert (report.unsubscribed_link, report.unsubscribed_one_click) == (0, 1)
    assert report.unsubscribed == 1
    assert report.bounce_rate == 0.5


def test_click_through_rate_is_unique_human_clickers_over_delivered(
    session: Session, edition: Edition
) -> None:
    clicked(session, edition, {1: (5, 9), 2: (1, 9)}, clickers=3)

    report = report_of(session, edition)

    assert report.unique_clickers == 3
    assert report.click_through_rate == 0.75
    assert (report.human_clicks, report.machine_clicks) == (6, 18)


def test_stories_are_ranked_by_human_clicks_with_their_place_and_title(
    session: Session, edition: Edition
) -> None:
    clicked(session, edition, {1: (2, 50), 2: (1, 0), 3: (7, 0)}, clickers=4)

    stories = report_of(session, edition).stories

    assert [(s.position, s.human_clicks) for s in stories] == [(3, 7), (1, 2), (2, 1)]
    assert stories[0].title.startswith("Story number ")
    assert stories[1].machine_clicks == 50  # a scanner's favourite does not rank higher


def test_a_story_whose_post_is_gone_shows_its_url(session: Session, edition: Edition) -> None:
    link = links(session, edition)[1]
    link.post_id = None
    session.commit()

    story = next(s for s in report_of(session, edition).stories if s.position == 1)

    assert story.title == link.url


def test_a_removed_story_shows_only_if_it_was_clicked(session: Session, edition: Edition) -> None:
    by_position = links(session, edition)
    by_position[2].position = 0  # removed, never clicked
    by_position[3].position = 0  # removed after a test copy was clicked
    by_position[3].human_clicks = 1
    session.commit()

    stories = report_of(session, edition).stories

    assert [(s.position, s.human_clicks) for s in stories] == [(0, 1), (1, 0)]


def test_opens_are_reported_only_for_an_edition_that_carried_a_pixel(
    session: Session, edition: Edition
) -> None:
    assert report_of(session, edition).opens is None

    edition.track_opens = True
    session.add(
        EditionEngagement(edition_id=edition.id, human_opens=3, machine_opens=8, unique_openers=2)
    )
    session.commit()
    report = report_of(session, edition)

    assert report.opens is not None
    assert (report.opens.human, report.opens.machine, report.opens.unique_openers) == (3, 8, 2)
    assert report.open_rate == 0.5


def test_an_edition_delivered_to_nobody_has_no_rates(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    edition = sent_edition(session, daily_list, [], now=now, settings=settings)

    report = report_of(session, edition)

    assert report.delivered == 0
    assert (report.click_through_rate, report.bounce_rate, report.complaint_rate) == (None,) * 3


def test_no_such_edition_has_no_report(session: Session) -> None:
    assert edition_report(session, 999, outcomes_of=outcomes_of_editions) is None


def test_the_first_48_hours_are_all_there_empty_hours_as_zeros(
    session: Session, edition: Edition
) -> None:
    session.add_all([
        ClickHour(edition_id=edition.id, hour=0, human=4, machine=9),
        ClickHour(edition_id=edition.id, hour=5, human=2, machine=0),
        ClickHour(edition_id=edition.id, hour=60, human=1, machine=0),  # after the chart
    ])  # fmt: skip
    session.commit()

    hours = click_hours(session, edition.id)

    assert [h.hour for h in hours] == list(range(48))
    assert (hours[0].human, hours[0].machine, hours[5].human, hours[1].human) == (4, 9, 2, 0)


# --- A list's trend ------------------------------------------------------------------------


def send_next_day(
    session: Session, nl: NewsletterList, readers: list[str], *, at: datetime, settings: Settings
) -> Edition:
    """The list's edition the day after, with new posts, sent to ``readers`` at ``at``."""
    upsert_posts(session, [post(100 + i, at - timedelta(hours=2 + i)) for i in range(2)])
    import_subscribers(session, nl, [Signup(r) for r in readers], now=at, source="test")
    edition = build_edition(session, nl, at.date(), now=at, settings=settings).edition
    start_sending(session, edition.id, now=at)
    session.commit()
    for batch in pending_batches(session, edition.id, batch_size=100):
        run_batch(session, batch, MemoryTransport(), settings, clock=lambda: at)
    session.commit()
    return edition


def test_the_trend_shows_each_sent_edition_newest_first_with_growth_between(
    session: Session,
    daily_list: NewsletterList,
    edition: Edition,
    settings: Settings,
    now: datetime,
) -> None:
    leave(session, edition, "ann@example.com", "page", now + timedelta(hours=2))
    clicked(session, edition, {1: (3, 0)}, clickers=2)
    tomorrow = now + timedelta(days=1)
    newcomers = ["eve@example.com", "fay@example.com"]
    second = send_next_day(
        session, daily_list, [*READERS[1:], *newcomers], at=tomorrow, settings=settings
    )

    trend = list_trend(session, daily_list, outcomes_of=outcomes_of_editions)

    assert [p.edition_id for p in trend.points] == [second.id, edition.id]
    newest, first = trend.points
    assert (first.delivered, first.growth, first.unsubscribed) == (4, 4, 1)
    assert first.click_through_rate == 0.5
    assert (newest.delivered, newest.growth, newest.unsubscribed) == (5, 1, 0)  # +2 -1
    assert trend.since_list_began


def test_the_trend_keeps_the_last_editions_and_counts_growth_from_the_one_before(
    session: Session,
    daily_list: NewsletterList,
    edition: Edition,
    settings: Settings,
    now: datetime,
) -> None:
    send_next_day(
        session, daily_list, [*READERS, "eve@example.com"], at=now + timedelta(days=1),
        settings=settings,
    )  # fmt: skip

    trend = list_trend(session, daily_list, outcomes_of=outcomes_of_editions, limit=1)

    assert [p.growth for p in trend.points] == [1]
    assert not trend.since_list_began


def test_a_list_with_nothing_sent_has_an_empty_trend(
    session: Session, daily_list: NewsletterList
) -> None:
    trend = list_trend(session, daily_list, outcomes_of=outcomes_of_editions)

    assert trend.points == ()
