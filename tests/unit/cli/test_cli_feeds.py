"""``newsletter feeds`` against a real local HTTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import get_settings
from newsletter.feeds import add_feed
from newsletter.models import Feed, Post
from tests.cli_runner import run
from tests.feed_server import SAMPLE_FEED, Answer, FeedServer


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch) -> Iterator[FeedServer]:
    """The test server listens on 127.0.0.1: feeds there are allowed only when an install
    allows private feeds (tests/security/test_fetching.py shows the refusals)."""
    monkeypatch.setenv("NEWSLETTER_ALLOW_PRIVATE_FEEDS", "true")
    get_settings.cache_clear()
    with FeedServer() as server:
        yield server
    get_settings.cache_clear()


def test_add_then_list_as_json(session: Session) -> None:
    code, output = run(
        "feeds", "add", "https://example.com/feed.xml", "--name", "Example", "--every", "30"
    )
    assert code == 0
    assert "Added feed" in output
    code, output = run("feeds", "list", "--format", "json")
    [feed] = json.loads(output)
    assert feed["name"] == "Example"
    assert feed["every_minutes"] == 30
    assert feed["status"] == "ok"
    assert feed["errors_in_a_row"] == 0


def test_add_refuses_a_url_it_cannot_poll(session: Session) -> None:
    code, output = run("feeds", "add", "feed.xml")
    assert code == 1
    assert "'feed.xml' is not an http(s) URL" in output
    assert session.scalar(select(func.count()).select_from(Feed)) == 0


def test_poll_stores_the_posts_of_due_feeds(session: Session, http: FeedServer) -> None:
    run("feeds", "add", http.serve("/feed.xml", Answer(body=SAMPLE_FEED)), "--name", "Sample")
    code, output = run("feeds", "poll")
    assert code == 0
    assert "(Sample): 15 new posts, 0 updated" in output
    assert session.scalar(select(func.count()).select_from(Post)) == 15


def test_poll_reports_a_failing_feed_and_the_list_shows_it(
    session: Session, http: FeedServer
) -> None:
    run("feeds", "add", http.serve("/feed.xml", Answer(502)), "--name", "Flaky")
    code, output = run("feeds", "poll")
    assert code == 0
    assert "(Flaky): failed, the server answered 502 Bad Gateway" in output
    code, output = run("feeds", "list", "--format", "json")
    [feed] = json.loads(output)
    assert feed["status"] == "failing"
    assert feed["last_error"] == "the server answered 502 Bad Gateway"


def test_poll_with_nothing_due_says_so(session: Session) -> None:
    code, output = run("feeds", "poll")
    assert code == 0
    assert "No feed is due" in output


def test_resume_puts_a_paused_feed_back_in_the_rotation(session: Session) -> None:
    feed = add_feed(session, "https://example.com/feed.xml", now=datetime.now(UTC))
    feed.paused_at, feed.consecutive_errors = datetime.now(UTC), 5
    session.commit()
    code, output = run("feeds", "resume", str(feed.id))
    assert code == 0
    assert "was paused" in output
    code, output = run("feeds", "list", "--format", "json")
    assert json.loads(output)[0]["status"] == "ok"


def test_resume_of_an_unknown_feed_says_so(session: Session) -> None:
    code, output = run("feeds", "resume", "42")
    assert code == 1
    assert "there is no feed 42" in output
