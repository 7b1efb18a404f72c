"""``newsletter analytics``: writing buffered clicks, and forgetting readers' old clicks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.analytics.buffer import CLICKS_KEY, RedisClickBuffer
from newsletter.analytics.flush import FlushResult
from newsletter.analytics.machines import Click
from newsletter.cli import common
from newsletter.cli.analytics import flush_report
from newsletter.clock import FrozenClock
from newsletter.config import Settings, get_settings
from newsletter.editions.lifecycle import start_sending
from newsletter.models import Edition, NewsletterList, ReaderClick, Subscriber, TrackedLink
from tests.cli_runner import run
from tests.factories import edition_with_readers


@pytest.fixture(autouse=True)
def cli_clock(clock: FrozenClock) -> Iterator[FrozenClock]:
    common.use_clock(clock)
    yield clock
    common.use_clock(None)


@pytest.fixture
def edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> Edition:
    """A sent edition of a list that counts clicks per link (the default)."""
    edition = edition_with_readers(
        session, daily_list, ["ann@example.com"], now=now - timedelta(hours=2), settings=settings
    )
    start_sending(session, edition.id, now=now - timedelta(hours=2))
    session.commit()
    return edition


@pytest.fixture
def with_redis(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.delete(CLICKS_KEY)
    monkeypatch.setenv("NEWSLETTER_REDIS_URL", redis_url)
    get_settings.cache_clear()
    yield client
    client.delete(CLICKS_KEY)
    monkeypatch.undo()
    get_settings.cache_clear()


def first_link(session: Session, edition: Edition) -> TrackedLink:
    session.expire_all()
    return session.scalars(
        select(TrackedLink).where(TrackedLink.edition_id == edition.id, TrackedLink.number == 1)
    ).one()


def test_flush_writes_the_settled_clicks_and_says_how_many_wait(
    session: Session, edition: Edition, now: datetime, with_redis: redis.Redis
) -> None:
    buffer = RedisClickBuffer(with_redis)
    sent = (now - timedelta(hours=1)).timestamp()
    for ref, ago in (("a1", 600), ("a2", 5)):
        buffer.push(Click("c", edition.id, 1, ref, sent, now.timestamp() - ago).encode())

    code, output = run("analytics", "flush")

    assert code == 0
    assert output == (
        "Wrote 1 click or open from 1 batch. 1 more waits until its message has had no click "
        "for click_settle_seconds; a later flush writes it."
    )
    assert first_link(session, edition).human_clicks == 1
    assert with_redis.llen(CLICKS_KEY) == 1


def test_flush_with_nothing_buffered_says_so(with_redis: redis.Redis) -> None:
    assert run("analytics", "flush") == (0, "No clicks were waiting to be written.")


@pytest.fixture
def without_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No NEWSLETTER_REDIS_URL, whatever earlier tests of the run pointed the process at."""
    monkeypatch.setenv("NEWSLETTER_REDIS_URL", "")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.mark.usefixtures("without_redis")
def test_flush_without_redis_says_where_the_clicks_are() -> None:
    code, output = run("analytics", "flush")

    assert code == 0
    assert output.startswith("No Redis (NEWSLETTER_REDIS_URL is empty)")


def test_a_flush_is_told_in_words() -> None:
    assert flush_report(FlushResult(batches=2, clicks=30)) == (
        "Wrote 30 clicks and opens from 2 batches."
    )
    assert flush_report(FlushResult(waiting=3)) == (
        "Nothing was ready to write. 3 more wait until their messages have had no click for "
        "click_settle_seconds; a later flush writes them."
    )


def test_purge_deletes_reader_clicks_older_than_the_retention_and_says_how_many(
    session: Session, edition: Edition, now: datetime
) -> None:
    reader = session.scalars(select(Subscriber.id)).one()
    for age in (181, 179):
        session.add(ReaderClick(
            edition_id=edition.id, subscriber_id=reader, clicked_at=now - timedelta(days=age)
        ))  # fmt: skip
    session.commit()

    code, output = run("analytics", "purge")

    assert code == 0
    assert output == (
        "Deleted 1 reader click older than 180 days (click_retention_days); per-link and "
        "per-edition counts stay."
    )
    session.expire_all()
    assert session.scalars(select(ReaderClick.clicked_at)).all() == [now - timedelta(days=179)]


def test_report_shows_an_editions_clicks_per_story(
    session: Session, edition: Edition, now: datetime, with_redis: redis.Redis
) -> None:
    buffer = RedisClickBuffer(with_redis)
    sent = (now - timedelta(hours=1)).timestamp()
    buffer.push(Click("c", edition.id, 1, "a1", sent, now.timestamp() - 600).encode())

    code, output = run("analytics", "report", str(edition.id))

    assert code == 0
    assert "Unique human clickers" in output
    assert "Clicks per story" in output
    assert first_link(session, edition).human_clicks == 1


def test_report_as_csv_is_what_the_admin_downloads(edition: Edition) -> None:
    code, output = run("analytics", "report", str(edition.id), "--csv")

    assert code == 0
    assert output.startswith("Metric,Value List,Shortlysts Daily")
    assert "Rank,Position in email,Story,URL,Human clicks,Machine clicks" in output


def test_report_of_no_such_edition_says_where_to_look() -> None:
    code, output = run("analytics", "report", "999999")

    assert code == 1
    assert "There is no edition 999999" in output
