"""Feeds polled from a real local HTTP server: new posts stored, validators honoured, and
every kind of failure recorded in words, backed off, and in the end paused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings, get_settings
from newsletter.feeds import (
    FeedError,
    add_feed,
    claim_feed,
    due_feeds,
    feed_status,
    poll_due_feed,
    poll_feed,
    resume_feed,
)
from newsletter.models import Feed, Post
from newsletter.posts.fetch import USER_AGENT
from newsletter.runtime import free_port
from tests.feed_server import SAMPLE_FEED, Answer, FeedServer, conditional

NOW = datetime(2025, 5, 16, 7, 30, tzinfo=UTC)
SAMPLE_POSTS = 15
BROKEN_XML = b"<?xml version='1.0'?><rss><channel><title>oops</title"


@pytest.fixture
def http() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


@pytest.fixture
def settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The test server listens on 127.0.0.1, which feeds may use only when an install allows
    private feeds (tests/security/test_fetching.py shows the refusals)."""
    monkeypatch.setenv("NEWSLETTER_ALLOW_PRIVATE_FEEDS", "true")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def posts(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Post)) or 0


def feed_at(session: Session, url: str, poll_minutes: int = 15) -> Feed:
    feed = add_feed(session, url, "Shortlysts", poll_minutes, now=NOW, allow_private=True)
    session.commit()
    return feed


def poll(session: Session, feed: Feed, settings: Settings, now: datetime = NOW) -> None:
    poll_feed(session, feed, now, settings)
    session.commit()


# --- Success -------------------------------------------------------------------------------


def test_a_new_feed_is_due_at_once(session: Session, http: FeedServer) -> None:
    feed = feed_at(session, http.url("/feed.xml"))
    assert due_feeds(session, NOW) == [feed]


def test_the_feeds_posts_are_stored(session: Session, settings: Settings, http: FeedServer) -> None:
    feed = feed_at(session, http.serve("/feed.xml", Answer(body=SAMPLE_FEED)))
    result = poll_feed(session, feed, NOW, settings)
    session.commit()
    assert result.ok
    assert result.created == SAMPLE_POSTS
    assert posts(session) == SAMPLE_POSTS


def test_a_success_schedules_the_next_poll(
    session: Session, settings: Settings, http: FeedServer
) -> None:
    feed = feed_at(session, http.serve("/feed.xml", Answer(body=SAMPLE_FEED)), poll_minutes=30)
    poll(session, feed, settings)
    assert feed.last_success_at == NOW
    assert feed.next_poll_at == NOW + timedelta(minutes=30)
    assert due_feeds(session, NOW + timedelta(minutes=29)) == []
    assert due_feeds(session, NOW + timedelta(minutes=30)) == [feed]


def test_polling_again_stores_no_duplicates(
    session: Session, settings: Settings, http: FeedServer
) -> None:
    feed = feed_at(session, http.serve("/feed.xml", Answer(body=SAMPLE_FEED)))
    poll(session, feed, settings)
    result = poll_feed(session, feed, NOW + timedelta(minutes=15), settings)
    assert result.created == 0
    assert posts(session) == SAMPLE_POSTS


def test_the_poller_says_who_it_is(session: Session, settings: Settings, http: FeedServer) -> None:
    feed = feed_at(session, http.serve("/feed.xml", Answer(body=SAMPLE_FEED)))
    poll(session, feed, settings)
    [(_, request)] = http.requests
    assert request["User-Agent"] == USER_AGENT


def test_an_unchanged_feed_is_not_downloaded_again(
    session: Session, settings: Settings, http: FeedServer
) -> None:
    url = http.serve("/feed.xml", conditional(SAMPLE_FEED, etag='"v1"'))
    feed = feed_at(session, url)
    poll(session, feed, settings)
    later = NOW + timedelta(minutes=15)
    result = poll_feed(session, feed, later, settings)
    assert result.ok
    assert result.not_modified
    assert http.requests[-1][1]["If-None-Match"] == '"v1"'
    assert feed.next_poll_at == later + timedelta(minutes=15)


def test_last_modified_is_sent_back_when_there_is_no_etag(
    session: Session, settings: Settings, http: FeedServer
) -> None:
    stamp = "Thu, 15 May 2025 22:00:00 GMT"
    feed = feed_at(session, http.serve("/feed.xml", conditional(SAMPLE_FEED, last_modified=stamp)))
    poll(session, feed, settings)
    result = poll_feed(session, feed, NOW + timedelta(minutes=15), settings)
    assert result.not_modified
    assert http.requests[-1][1]["If-Modified-Since"] == stamp


# --- Failures ------------------------------------------------------------------------------


def test_a_server_error_is_recorded_in_words(
    session: Session, settings: Settings, http: FeedServer
) -> None:
    feed = feed_at(session, http.serve("/feed.xml", Answer(500, b"oops")))
    result = poll_feed(session, feed, NOW, settings)
    assert not result.ok
    assert feed.last_error == "the server answered 500 Internal Server Error"
    assert feed.consecutive_errors == 1
    assert feed_status(feed) == "failing"


def test_each_failure_in_a_row_doubles_the_wait(
    session: Session, settings: Settings, http: FeedServer
) -> None:
    feed = feed_at(session, http.serve("/feed.xml", Answer(503)), poll_minutes=10)
    now, waits = NOW, []
    for _ in range(3):
        poll(session, feed, settings, now)
        waits.append(feed.next_poll_at - now)
        now = feed.next_poll_at
    assert waits == [timedelta(minutes=20), timedelta(minutes=40), timedelta(minutes=80)]


def test_the_wait_after_failures_is_at_most_a_day(
    session: Session, settings: Settings, http: FeedServer
) -> None:
    feed = feed_at(session, http.serve("/feed.xml", Answer(503)), poll_minutes=12 * 60)
    poll(session, feed, settings)
    second = feed.next_poll_at
    poll(session, feed, settings, second)
    assert feed.next_poll_at == second + timedelta(hours=24)


def test_a_success_after_failures_resets_the_count(
    session: Session, settings: Settings, http: FeedServer
) -> None:
    feed = feed_at(session, http.serve("/feed.xml", Answer(500)))
    poll(session, feed, settings)
    http.serve("/feed.xml", Answer(body=SAMPLE_FEED))
    poll(session, feed, settings, feed.next_poll_at)
    assert feed.consecutive_errors == 0
    assert feed.last_error == ""
    assert feed_status(feed) == "ok"


def test_too_many_failures_in_a_row_pause_the_feed(
    session: Session, settings: Settings, http: FeedServer
) -> None:
    feed = feed_at(session, http.serve("/feed.xml", Answer(500)))
    now = NOW
    for _ in range(settings.feed_max_errors):
        assert due_feeds(session, now) == [feed]
        poll(session, feed, settings, now)
        now = feed.next_poll_at
    assert feed.paused_at is not None
    assert feed_status(feed) == "paused"
    assert due_feeds(session, now + timedelta(days=30)) == []


def test_a_resumed_feed_is_polled_at_once_with_its_backoff_forgotten(
    session: Session, settings: Settings, http: FeedServer
) -> None:
    feed = feed_at(session, http.serve("/feed.xml", Answer(500)))
    now = NOW
    for _ in range(settings.feed_max_errors):
        poll(session, feed, settings, now)
        now = feed.next_poll_at
    resume_feed(feed, now)
    session.commit()
    assert due_feeds(session, now) == [feed]
    http.serve("/feed.xml", Answer(500))
    poll(session, feed, settings, now)
    assert feed.next_poll_at == now + timedelta(minutes=30)
    assert feed.paused_at is None


def test_malformed_xml_is_a_clear_error(
    session: Session, settings: Settings, http: FeedServer
) -> None:
    feed = feed_at(session, http.serve("/feed.xml", Answer(body=BROKEN_XML)))
    poll(session, feed, settings)
    assert feed.last_error.startswith("not a readable RSS or Atom feed")
    assert posts(session) == 0


def test_a_web_page_instead_of_a_feed_is_a_clear_error(
    session: Session, settings: Settings, http: FeedServer
) -> None:
    page = b"<!doctype html><html><body><p>Moved to our new site</p></body></html>"
    feed = feed_at(session, http.serve("/feed.xml", Answer(body=page)))
    poll(session, feed, settings)
    assert feed.last_error.startswith("not a readable RSS or Atom feed")


@pytest.mark.parametrize("declare_length", [True, False], ids=["declared", "streamed"])
def test_an_oversized_answer_is_refused(
    session: Session, settings: Settings, http: FeedServer, declare_length: bool
) -> None:
    small = settings.model_copy(update={"feed_max_bytes": 10_000})
    answer = Answer(body=SAMPLE_FEED, declare_length=declare_length)
    feed = feed_at(session, http.serve("/feed.xml", answer))
    poll(session, feed, small)
    assert feed.last_error == "the answer is larger than the 10,000-byte limit"
    assert posts(session) == 0


@pytest.mark.parametrize(
    "answer",
    [
        Answer(body=SAMPLE_FEED, delay=1.5),
        # Each piece comes well within the timeout; the whole answer does not.
        Answer(body=SAMPLE_FEED, drip=0.05),
    ],
    ids=["silent", "trickling"],
)
def test_a_feed_that_does_not_answer_in_time_is_a_failure(
    session: Session, settings: Settings, http: FeedServer, answer: Answer
) -> None:
    impatient = settings.model_copy(update={"feed_timeout": 0.3})
    feed = feed_at(session, http.serve("/feed.xml", answer))
    poll(session, feed, impatient)
    assert feed.last_error == "no complete answer within 0.3 seconds"


def test_a_missing_feed_is_a_failure(
    session: Session, settings: Settings, http: FeedServer
) -> None:
    feed = feed_at(session, http.url("/gone.xml"))
    poll(session, feed, settings)
    assert feed.last_error == "the server answered 404 Not Found"


def test_an_unreachable_server_is_a_failure(session: Session, settings: Settings) -> None:
    feed = feed_at(session, f"http://127.0.0.1:{free_port()}/feed.xml")
    poll(session, feed, settings)
    assert feed.last_error.startswith("could not reach the server")
    assert feed.consecutive_errors == 1


# --- Adding feeds --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "minutes", "message"),
    [
        ("ftp://example.com/feed", 15, "is not an http(s) URL"),
        ("example.com/feed.xml", 15, "is not an http(s) URL"),
        ("https://example.com/a feed.xml", 15, "cannot contain spaces"),
        ("https://example.com/feed.xml", 0, "poll every 1 to 1440 minutes"),
    ],
)
def test_a_feed_that_cannot_be_polled_is_refused(
    session: Session, url: str, minutes: int, message: str
) -> None:
    with pytest.raises(FeedError, match=re.escape(message)):
        add_feed(session, url, "", minutes, now=NOW)


def test_the_same_feed_cannot_be_added_twice(session: Session) -> None:
    feed_at(session, "https://example.com/feed.xml")
    with pytest.raises(FeedError, match=re.escape("polls https://example.com/feed.xml already")):
        add_feed(session, "https://example.com/feed.xml", now=NOW)


def test_a_feed_without_a_name_is_named_after_its_host(session: Session) -> None:
    feed = add_feed(session, "https://news.example.com/rss", now=NOW)
    assert feed.name == "news.example.com"


# --- Pollers side by side ------------------------------------------------------------------


def test_a_feed_claimed_by_one_poller_is_skipped_by_another(session: Session) -> None:
    feed = feed_at(session, "https://example.com/feed.xml")
    assert claim_feed(session, feed.id, now=NOW, hold=timedelta(minutes=2))
    assert not claim_feed(session, feed.id, now=NOW, hold=timedelta(minutes=2))


def test_polling_a_due_feed_commits_its_posts(
    session: Session, settings: Settings, http: FeedServer
) -> None:
    feed = feed_at(session, http.serve("/feed.xml", Answer(body=SAMPLE_FEED)))
    result = poll_due_feed(feed.id, settings, clock=lambda: NOW)
    assert result is not None
    assert result.created == SAMPLE_POSTS
    session.expire_all()
    assert posts(session) == SAMPLE_POSTS
    assert session.get_one(Feed, feed.id).next_poll_at == NOW + timedelta(minutes=15)


def test_the_beat_task_polls_every_due_feed_despite_a_broken_one(
    session: Session, settings: Settings, http: FeedServer, broker: str
) -> None:
    from workers.tasks import poll_feeds

    now = datetime.now(UTC)
    broken = add_feed(session, http.serve("/broken.xml", Answer(500)), now=now, allow_private=True)
    good = add_feed(
        session, http.serve("/feed.xml", Answer(body=SAMPLE_FEED)), now=now, allow_private=True
    )
    session.commit()
    assert poll_feeds() == 2
    session.expire_all()
    assert posts(session) == SAMPLE_POSTS
    assert session.get_one(Feed, broken.id).consecutive_errors == 1
    assert session.get_one(Feed, good.id).last_success_at is not None


# --- What a feed's items say ---------------------------------------------------------------


RELATIVE_FEED = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>
<link>/</link><description>d</description>
<item><title>A local story</title><link>/posts/local</link><description>A dek.</description>
</item></channel></rss>"""


def test_relative_links_are_resolved_against_the_feeds_url(
    session: Session, settings: Settings, http: FeedServer
) -> None:
    url = http.serve("/feeds/rss.xml", Answer(body=RELATIVE_FEED))
    poll(session, feed_at(session, url), settings)
    assert session.scalars(select(Post.url)).one() == http.url("/posts/local")


def test_an_undated_item_keeps_the_date_it_was_first_seen(
    session: Session, settings: Settings, http: FeedServer
) -> None:
    feed = feed_at(session, http.serve("/feeds/rss.xml", Answer(body=RELATIVE_FEED)))
    poll(session, feed, settings)
    result = poll_feed(session, feed, NOW + timedelta(hours=3), settings)
    assert (result.created, result.updated) == (0, 0)
    assert session.scalars(select(Post.published_at)).one() == NOW


def test_a_failed_poll_is_logged_in_one_line_without_a_traceback(
    session: Session, settings: Settings, http: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = http.serve("/feed.xml", Answer(302, headers={"Location": "file:///etc/passwd"}))
    feed = feed_at(session, url)
    with caplog.at_level("WARNING", logger="newsletter.feeds.poll"):
        poll(session, feed, settings)
    [record] = caplog.records
    assert record.exc_info is None
    assert record.getMessage() == (
        f"feed {feed.id} ({url}) failed 1 time(s) in a row: "
        "it redirects to file:///etc/passwd, which is not an http(s) URL"
    )
