"""``newsletter posts import URL`` against a real local HTTP server (issue 10, finding 9): a
failed fetch is one line naming the URL and what went wrong, exit status 1, nothing stored;
relative links in a feed are resolved against its URL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.cli import common
from newsletter.clock import FrozenClock
from newsletter.config import get_settings
from newsletter.models import Post
from newsletter.runtime import free_port
from tests.cli_runner import run
from tests.feed_server import Answer, FeedServer

FEED_WITH_RELATIVE_LINKS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Local news</title><link>/</link><description>d</description>
<item><title>Rooted link</title><link>/posts/rooted</link>
<pubDate>Thu, 15 May 2025 20:00:00 +0000</pubDate>
<description>&lt;p&gt;See &lt;a href="/posts/other"&gt;the other story&lt;/a&gt;.&lt;/p&gt;
</description>
<enclosure url="images/rooted.jpg" type="image/jpeg" length="1"/></item>
<item><title>Relative link</title><link>posts/relative</link>
<pubDate>Thu, 15 May 2025 21:00:00 +0000</pubDate><description>A dek.</description></item>
</channel></rss>"""


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch) -> Iterator[FeedServer]:
    """The test server listens on 127.0.0.1: an install that allows private feeds."""
    monkeypatch.setenv("NEWSLETTER_ALLOW_PRIVATE_FEEDS", "true")
    monkeypatch.setenv("NEWSLETTER_FEED_TIMEOUT", "0.5")
    get_settings.cache_clear()
    with FeedServer() as server:
        yield server
    get_settings.cache_clear()


def count_posts(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Post)) or 0


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (Answer(404, b"no such feed"), "the server answered 404 Not Found"),
        (Answer(500, b"oops"), "the server answered 500 Internal Server Error"),
        (Answer(body=b"<rss/>", delay=1.5), "no complete answer within 0.5 seconds"),
        (
            Answer(302, headers={"Location": "file:///etc/passwd"}),
            "it redirects to file:///etc/passwd, which is not an http(s) URL",
        ),
    ],
    ids=["404", "500", "timeout", "redirect-to-file"],
)
def test_a_failed_fetch_is_one_line_naming_the_url(
    session: Session, http: FeedServer, answer: Answer, reason: str
) -> None:
    url = http.serve("/feed.xml", answer)
    code, output = run("posts", "import", url)
    assert code == 1
    assert output == f"error: could not import {url}: {reason}"
    assert count_posts(session) == 0


def test_a_refused_connection_is_one_line_naming_the_url(
    session: Session, http: FeedServer
) -> None:
    url = f"http://127.0.0.1:{free_port()}/feed.xml"
    code, output = run("posts", "import", url)
    assert code == 1
    assert output.startswith(f"error: could not import {url}: could not reach the server: ")
    assert "Connection refused" in output
    assert "\n" not in output


def test_relative_links_are_resolved_against_the_feeds_url(
    session: Session, http: FeedServer
) -> None:
    url = http.serve("/feeds/rss.xml", Answer(body=FEED_WITH_RELATIVE_LINKS))
    site = url.removesuffix("/feeds/rss.xml")
    code, output = run("posts", "import", url)
    assert code == 0, output
    assert "Imported 2 posts: 2 new" in output
    rooted, relative = session.scalars(select(Post).order_by(Post.published_at)).all()
    assert rooted.url == f"{site}/posts/rooted"
    assert rooted.image_url == f"{site}/feeds/images/rooted.jpg"
    assert f'href="{site}/posts/other"' in rooted.body_html
    assert relative.url == f"{site}/feeds/posts/relative"


def json_file(tmp_path: Path, image_url: str) -> str:
    path = tmp_path / "posts.json"
    path.write_text(json.dumps([{
        "guid": "cms-1", "url": "https://www.shortlysts.com/posts/one", "title": "One",
        "body_html": "<p>Body.</p>", "image_url": image_url,
        "published_at": "2025-05-15T10:00:00Z",
    }]))  # fmt: skip
    return str(path)


def test_an_imported_image_url_with_spaces_is_stored_percent_encoded(
    session: Session, tmp_path: Path
) -> None:
    source = json_file(tmp_path, "https://www.shortlysts.com/images/Putin at the table.jpg")

    code, output = run("posts", "import", source)

    assert (code, output) == (0, "Imported 1 posts: 1 new, 0 updated, 0 unchanged")
    stored = session.scalars(select(Post)).one()
    assert stored.image_url == "https://www.shortlysts.com/images/Putin%20at%20the%20table.jpg"


def test_an_imported_post_with_an_unusable_image_url_is_stored_without_it(
    session: Session, tmp_path: Path
) -> None:
    code, output = run("posts", "import", json_file(tmp_path, "javascript:alert(1)"))

    assert code == 0
    assert output == (
        "warning: post 1 (One): image dropped, its URL must be an http(s) URL, got "
        "'javascript:alert(1)' Imported 1 posts: 1 new, 0 updated, 0 unchanged"
    )
    stored = session.scalars(select(Post)).one()
    assert (stored.title, stored.image_url) == ("One", None)


# --- the sample feed (issue 14: a newcomer's first edition is not empty) ----------------------


@pytest.fixture
def cli_clock_at(request: pytest.FixtureRequest) -> Iterator[FrozenClock]:
    clock = FrozenClock(request.param)
    common.use_clock(clock)
    yield clock
    common.use_clock(None)


@pytest.mark.parametrize(
    "cli_clock_at",
    [
        datetime(2027, 3, 28, 0, 59, 30, tzinfo=UTC),  # before 7:00 in New York
        datetime(2026, 12, 4, 21, 15, tzinfo=UTC),  # after it
    ],
    indirect=True,
    ids=["before-the-send-time", "after-it"],
)
def test_the_sample_makes_todays_edition_at_any_hour(
    cli_clock_at: FrozenClock, session: Session
) -> None:
    code, _ = run(
        "lists", "create", "daily", "--name", "Shortlysts Daily",
        "--from-address", "news@example.com", "--schedule", "0 7 * * *",
        "--timezone", "America/New_York",
    )  # fmt: skip
    assert code == 0

    code, imported = run("posts", "import", "--sample")
    assert code == 0
    assert "Imported 15 posts: 15 new" in imported

    code, built = run("digest", "build", "--list", "daily")
    assert code == 0, built
    assert "skipped" not in built
    assert re.search(r"\b15 stories\b", built), built


def test_the_sample_or_a_source_not_both() -> None:
    code, output = run("posts", "import", "feed.xml", "--sample")

    assert code == 2
    assert "give a feed, file or URL to import, or --sample (not both)" in output
