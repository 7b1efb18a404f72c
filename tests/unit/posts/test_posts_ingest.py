"""Storing imported posts: new ones inserted, edited ones updated, repeats left alone."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import Post
from newsletter.posts.ingest import ImportReport, import_posts, upsert_posts
from newsletter.posts.schema import PostIn
from newsletter.posts.sources import SourceError
from newsletter.resources import data_path

SAMPLE_FEED = data_path("sample_feed.xml")
SEED_GUID = "shortlysts-russia-ukraine-peace-talks-in-doubt-as-putin-is-a-no-show"


def run_import(session: Session, source: Path, settings: Settings, now: datetime) -> ImportReport:
    return import_posts(
        session,
        str(source),
        site_url=settings.site_url,
        now=now,
        max_bytes=settings.max_import_bytes,
    )


def count_posts(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Post)) or 0


def rss(*items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>T</title>'
        "<link>https://www.shortlysts.com/</link><description>d</description>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def rss_item(guid: str, title: str, link: str = "") -> str:
    link = link or f"https://www.shortlysts.com/posts/{guid}"
    return (
        f"<item><title>{title}</title><link>{link}</link><guid>{guid}</guid>"
        "<pubDate>Thu, 15 May 2025 20:00:00 +0000</pubDate>"
        "<description>A dek for the story.</description></item>"
    )


def post_in(title: str = "Original title", **overrides: object) -> PostIn:
    values: dict[str, object] = {
        "guid": "story-1",
        "url": "https://www.shortlysts.com/posts/story-1",
        "title": title,
        "dek": "The dek.",
        "body_html": "<p>A paragraph that is long enough to be taken as the summary.</p>",
        "category": "World",
        "published_at": datetime(2025, 5, 15, 12, 0, tzinfo=UTC),
        **overrides,
    }
    return PostIn.model_validate(values)


# --- the sample feed ------------------------------------------------------------------------


def test_sample_feed_import_creates_fifteen_posts(
    session: Session, settings: Settings, now: datetime
) -> None:
    report = run_import(session, SAMPLE_FEED, settings, now)
    assert (report.created, report.updated, report.unchanged) == (15, 0, 0)
    assert report.errors == []
    assert count_posts(session) == 15


def test_sample_feed_imported_twice_leaves_everything_unchanged(
    session: Session, settings: Settings, now: datetime
) -> None:
    first = run_import(session, SAMPLE_FEED, settings, now)
    session.commit()
    second = run_import(session, SAMPLE_FEED, settings, now)
    assert (second.created, second.updated, second.unchanged) == (0, 0, 15)
    assert second.post_ids == first.post_ids
    assert count_posts(session) == 15


def test_stored_seed_post_keeps_its_sections_and_summary(
    session: Session, settings: Settings, now: datetime
) -> None:
    run_import(session, SAMPLE_FEED, settings, now)
    row = session.scalar(select(Post).where(Post.guid == SEED_GUID))
    assert row is not None
    assert row.title == "Russia and Ukraine Peace Talks in Doubt as Putin is a No Show"
    assert row.category == "World"
    assert row.body_html.count("<h2>") == 3
    assert row.summary.startswith("Delegations from Russia and Ukraine")


def test_seed_post_text_file_imports_as_one_post(
    session: Session, settings: Settings, now: datetime, seed_post_text: str, tmp_path: Path
) -> None:
    source = tmp_path / "seed-post.txt"
    source.write_text(seed_post_text, encoding="utf-8")
    report = run_import(session, source, settings, now)
    assert report.created == 1
    row = session.scalar(select(Post))
    assert row is not None
    assert row.title == "Russia and Ukraine Peace Talks in Doubt as Putin is a No Show"
    assert row.body_html.count("<h2>") == 3


# --- edits and duplicates -------------------------------------------------------------------


def test_edited_title_updates_the_row_instead_of_adding_one(
    session: Session, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    source = tmp_path / "feed.xml"
    source.write_bytes(rss(rss_item("story-1", "First headline")))
    first = run_import(session, source, settings, now)
    session.commit()
    source.write_bytes(rss(rss_item("story-1", "Corrected headline")))
    second = run_import(session, source, settings, now)
    assert (second.created, second.updated) == (0, 1)
    assert second.post_ids == first.post_ids
    assert session.scalars(select(Post.title)).all() == ["Corrected headline"]


def test_unchanged_post_is_counted_unchanged(session: Session) -> None:
    upsert_posts(session, [post_in()])
    report = upsert_posts(session, [post_in()])
    assert (report.created, report.updated, report.unchanged) == (0, 0, 1)


def test_posts_without_guid_are_deduplicated_by_url(
    session: Session, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    source = tmp_path / "posts.json"
    story = {
        "url": "https://www.shortlysts.com/posts/no-guid",
        "title": "A post without a guid",
        "published_at": "2025-05-15T10:00:00Z",
    }
    source.write_text(json.dumps([story]))
    run_import(session, source, settings, now)
    source.write_text(json.dumps([{**story, "title": "The same post, retitled"}]))
    report = run_import(session, source, settings, now)
    assert (report.created, report.updated) == (0, 1)
    assert session.scalars(select(Post.guid)).all() == ["https://www.shortlysts.com/posts/no-guid"]


def test_same_guid_twice_in_one_source_stores_the_last_copy(session: Session) -> None:
    report = upsert_posts(session, [post_in("Early copy"), post_in("Late copy")])
    assert report.created == 1
    assert session.scalars(select(Post.title)).all() == ["Late copy"]


# --- unreadable sources write nothing -------------------------------------------------------


def test_random_bytes_raise_source_error_and_write_nothing(
    session: Session, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    source = tmp_path / "feed.xml"
    source.write_bytes(random.Random(7).randbytes(4096))
    with pytest.raises(SourceError, match="not a readable RSS or Atom feed"):
        run_import(session, source, settings, now)
    assert count_posts(session) == 0


def test_truncated_feed_raises_source_error_and_writes_nothing(
    session: Session, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    source = tmp_path / "feed.xml"
    source.write_bytes(b"<rss><channel><item><title>x")
    with pytest.raises(SourceError, match="not a readable RSS or Atom feed"):
        run_import(session, source, settings, now)
    assert count_posts(session) == 0


def test_invalid_json_file_raises_source_error_and_writes_nothing(
    session: Session, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    source = tmp_path / "posts.json"
    source.write_text('[{"title": "Half a post",')
    with pytest.raises(SourceError, match="not valid JSON"):
        run_import(session, source, settings, now)
    assert count_posts(session) == 0


def test_missing_file_is_a_source_error(
    session: Session, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    with pytest.raises(SourceError, match="no such file"):
        run_import(session, tmp_path / "nowhere.xml", settings, now)


def test_file_over_the_import_limit_is_refused(
    session: Session, now: datetime, tmp_path: Path
) -> None:
    source = tmp_path / "feed.xml"
    source.write_bytes(rss(rss_item("story-1", "Headline")))
    with pytest.raises(SourceError, match="import limit"):
        import_posts(session, str(source), site_url="https://x.example", now=now, max_bytes=100)
    assert count_posts(session) == 0


# --- partly bad sources ---------------------------------------------------------------------


def test_feed_with_a_javascript_link_imports_the_good_items(
    session: Session, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    source = tmp_path / "feed.xml"
    source.write_bytes(
        rss(
            rss_item("good-1", "Good one"),
            rss_item("evil", "Evil one", link="javascript:alert(document.cookie)"),
            rss_item("good-2", "Good two"),
        )
    )
    report = run_import(session, source, settings, now)
    assert report.created == 2
    assert sorted(session.scalars(select(Post.guid))) == ["good-1", "good-2"]
    [error] = report.errors
    assert "item 2 (Evil one)" in error


def test_json_with_a_non_object_item_imports_the_rest_and_reports_it(
    session: Session, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    source = tmp_path / "posts.json"
    good = {
        "guid": "j1",
        "url": "https://www.shortlysts.com/posts/j1",
        "title": "Good JSON post",
        "published_at": "2025-05-15T10:00:00Z",
    }
    source.write_text(json.dumps({"posts": [good, ["not", "a", "post"]]}))
    report = run_import(session, source, settings, now)
    assert report.created == 1
    assert report.errors == ["post 2: expected an object, got list"]


# --- items without a date -------------------------------------------------------------------


def undated_item(guid: str, title: str) -> str:
    return (
        f"<item><title>{title}</title><link>https://www.shortlysts.com/posts/{guid}</link>"
        f"<guid>{guid}</guid><description>A dek for the story.</description></item>"
    )


def test_an_undated_item_keeps_the_date_it_was_first_seen(
    session: Session, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    source = tmp_path / "feed.xml"
    source.write_bytes(rss(undated_item("story-1", "Headline")))
    run_import(session, source, settings, now)
    session.commit()
    report = run_import(session, source, settings, now + timedelta(days=1))
    assert report.unchanged == 1
    assert session.scalars(select(Post.published_at)).one() == now


def test_an_edited_undated_item_is_updated_and_keeps_its_first_date(
    session: Session, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    source = tmp_path / "feed.xml"
    source.write_bytes(rss(undated_item("story-1", "Headline")))
    run_import(session, source, settings, now)
    session.commit()
    source.write_bytes(rss(undated_item("story-1", "Corrected headline")))
    report = run_import(session, source, settings, now + timedelta(hours=5))
    assert report.updated == 1
    post = session.scalars(select(Post)).one()
    assert (post.title, post.published_at) == ("Corrected headline", now)


def test_an_item_that_gains_a_date_takes_it(
    session: Session, settings: Settings, now: datetime, tmp_path: Path
) -> None:
    source = tmp_path / "feed.xml"
    source.write_bytes(rss(undated_item("story-1", "Headline")))
    run_import(session, source, settings, now)
    session.commit()
    source.write_bytes(rss(rss_item("story-1", "Headline")))
    run_import(session, source, settings, now + timedelta(hours=5))
    assert session.scalars(select(Post.published_at)).one() == datetime(
        2025, 5, 15, 20, 0, tzinfo=UTC
    )
