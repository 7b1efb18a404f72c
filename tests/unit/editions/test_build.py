"""Building a list's edition for a day: once, from the posts not sent before."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.editions.build import BuildResult, build_edition
from newsletter.lists.service import ListSpec, create_list
from newsletter.models import Edition, EditionStatus, NewsletterList, Post, StoryDetail
from newsletter.posts.ingest import upsert_posts
from newsletter.posts.sources import parse_feed
from newsletter.rendering.placeholders import Markers
from newsletter.resources import data_path
from tests.factories import post

SEED_GUID = "shortlysts-russia-ukraine-peace-talks-in-doubt-as-putin-is-a-no-show"
TODAY = date(2025, 5, 16)
TOMORROW = date(2025, 5, 17)


@pytest.fixture
def sample_posts(session: Session, now: datetime) -> None:
    parsed = parse_feed(data_path("sample_feed.xml").read_bytes(), now=now)
    upsert_posts(session, parsed.posts)
    session.commit()


def build(
    session: Session, nl: NewsletterList, day: date, now: datetime, settings: Settings
) -> BuildResult:
    result = build_edition(session, nl, day, now=now, settings=settings)
    session.commit()
    return result


def guids(edition: Edition) -> list[str]:
    return [item.post.guid for item in edition.items]


@pytest.mark.usefixtures("sample_posts")
def test_first_edition_takes_every_post_of_the_lookback_window(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    result = build(session, daily_list, TODAY, now, settings)
    assert result.created
    assert result.edition.status == EditionStatus.SCHEDULED
    assert len(result.edition.items) == 15


@pytest.mark.usefixtures("sample_posts")
def test_edition_lists_the_newest_post_first(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    edition = build(session, daily_list, TODAY, now, settings).edition
    assert guids(edition)[0] == SEED_GUID
    published = [item.post.published_at for item in edition.items]
    assert published == sorted(published, reverse=True)
    assert [item.position for item in edition.items] == list(range(1, 16))


@pytest.mark.usefixtures("sample_posts")
def test_edition_window_ends_at_the_scheduled_time(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    edition = build(session, daily_list, TODAY, now, settings).edition
    assert edition.cutoff == datetime(2025, 5, 16, 7, 0, tzinfo=UTC)
    assert edition.window_start == edition.cutoff - timedelta(hours=48)


@pytest.mark.usefixtures("sample_posts")
def test_built_edition_is_rendered_with_subject_and_placeholders(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    edition = build(session, daily_list, TODAY, now, settings).edition
    assert edition.subject == (
        "Shortlysts Daily, May 16: Russia and Ukraine Peace Talks in Doubt as Putin is a No Show"
    )
    assert edition.preheader.startswith("Russian President Putin declines")
    assert all(marker in edition.html for marker in Markers(edition.marker_key).context().values())
    assert "PEACE TALKS IN DOUBT" in edition.text


@pytest.mark.usefixtures("sample_posts")
def test_a_list_showing_first_sections_builds_its_edition_with_them(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    daily_list.story_detail = StoryDetail.FIRST_SECTION

    edition = build(session, daily_list, TODAY, now, settings).edition

    assert "What Happened?\n--------------\nDelegations from Russia" in edition.text
    assert "Why it Matters" not in edition.text


@pytest.mark.usefixtures("sample_posts")
def test_second_build_returns_the_same_edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    first = build(session, daily_list, TODAY, now, settings)
    second = build(session, daily_list, TODAY, now + timedelta(hours=3), settings)
    assert not second.created
    assert second.edition.id == first.edition.id
    assert guids(second.edition) == guids(first.edition)
    assert session.scalar(select(func.count()).select_from(Edition)) == 1


@pytest.mark.usefixtures("sample_posts")
def test_second_build_ignores_posts_published_since(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    first = build(session, daily_list, TODAY, now, settings)
    html = first.edition.html
    upsert_posts(session, [post(99, now - timedelta(minutes=45))])
    session.commit()
    second = build(session, daily_list, TODAY, now, settings)
    assert len(second.edition.items) == 15
    assert second.edition.html == html


def test_edition_without_posts_is_skipped_with_the_reason(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    result = build(session, daily_list, TODAY, now, settings)
    assert result.created
    assert result.edition.status == EditionStatus.SKIPPED
    assert "no new posts" in result.edition.skip_reason
    assert result.edition.items == []
    assert result.edition.html == ""


def test_skipped_edition_is_not_rebuilt_when_posts_arrive_later(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    build(session, daily_list, TODAY, now, settings)
    upsert_posts(session, [post(1, now - timedelta(hours=1))])
    session.commit()
    again = build(session, daily_list, TODAY, now, settings)
    assert not again.created
    assert again.edition.status == EditionStatus.SKIPPED


def test_skip_reason_names_the_list_categories(
    session: Session, now: datetime, settings: Settings
) -> None:
    nl = create_list(
        session,
        ListSpec(
            slug="sport",
            name="Sport",
            from_address="sport@shortlysts.example.com",
            categories=["Sports"],
        ),
    )
    upsert_posts(session, [post(1, now - timedelta(hours=2), category="World")])
    session.commit()
    edition = build(session, nl, TODAY, now, settings).edition
    assert edition.status == EditionStatus.SKIPPED
    assert "no new posts" in edition.skip_reason
    assert "Sports" in edition.skip_reason


@pytest.mark.usefixtures("sample_posts")
def test_next_days_edition_excludes_posts_of_the_previous_edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    build(session, daily_list, TODAY, now, settings)
    fresh = post(100, datetime(2025, 5, 16, 15, 0, tzinfo=UTC), title="A fresh story")
    upsert_posts(session, [fresh])
    session.commit()
    tomorrow_morning = datetime(2025, 5, 17, 7, 30, tzinfo=UTC)
    edition = build(session, daily_list, TOMORROW, tomorrow_morning, settings).edition
    assert guids(edition) == ["post-100"]


@pytest.mark.usefixtures("sample_posts")
def test_next_days_window_reaches_back_before_the_previous_cutoff_for_late_posts(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    # Issue 10: it once started at the previous cutoff, losing posts seen after that build.
    first = build(session, daily_list, TODAY, now, settings).edition
    upsert_posts(session, [post(100, datetime(2025, 5, 16, 15, 0, tzinfo=UTC))])
    session.commit()
    second = build(
        session, daily_list, TOMORROW, datetime(2025, 5, 17, 7, 30, tzinfo=UTC), settings
    ).edition
    late = timedelta(hours=settings.late_post_lookback_hours)
    assert second.window_start == max(first.cutoff - late, first.window_start)
    assert guids(second) == ["post-100"]


@pytest.mark.usefixtures("sample_posts")
def test_post_redated_after_being_sent_is_not_sent_again(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    build(session, daily_list, TODAY, now, settings)
    seed = session.scalar(select(Post).where(Post.guid == SEED_GUID))
    assert seed is not None
    seed.published_at = datetime(2025, 5, 16, 12, 0, tzinfo=UTC)  # republished with an update
    upsert_posts(session, [post(100, datetime(2025, 5, 16, 15, 0, tzinfo=UTC))])
    session.commit()
    edition = build(
        session, daily_list, TOMORROW, datetime(2025, 5, 17, 7, 30, tzinfo=UTC), settings
    ).edition
    assert guids(edition) == ["post-100"]


def test_next_day_without_new_posts_is_skipped(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    upsert_posts(session, [post(1, now - timedelta(hours=3))])
    session.commit()
    assert (
        build(session, daily_list, TODAY, now, settings).edition.status == EditionStatus.SCHEDULED
    )
    tomorrow = build(
        session, daily_list, TOMORROW, datetime(2025, 5, 17, 7, 30, tzinfo=UTC), settings
    ).edition
    assert tomorrow.status == EditionStatus.SKIPPED


@pytest.mark.usefixtures("sample_posts")
def test_edition_is_capped_at_the_lists_max_posts(
    session: Session, now: datetime, settings: Settings
) -> None:
    nl = create_list(
        session,
        ListSpec(
            slug="short", name="Short", from_address="short@shortlysts.example.com", max_posts=5
        ),
    )
    session.commit()
    edition = build(session, nl, TODAY, now, settings).edition
    assert len(edition.items) == 5
    assert guids(edition)[0] == SEED_GUID


@pytest.mark.usefixtures("sample_posts")
def test_category_list_takes_only_its_categories(
    session: Session, now: datetime, settings: Settings
) -> None:
    nl = create_list(
        session,
        ListSpec(
            slug="science",
            name="Science",
            from_address="sci@shortlysts.example.com",
            categories=["science", "HEALTH"],
        ),
    )
    session.commit()
    edition = build(session, nl, TODAY, now, settings).edition
    assert {item.post.category for item in edition.items} == {"Science", "Health"}
    assert len(edition.items) == 4


@pytest.mark.usefixtures("sample_posts")
def test_edition_built_before_the_send_time_holds_what_is_published_so_far(
    session: Session, daily_list: NewsletterList, settings: Settings
) -> None:
    early = datetime(2025, 5, 15, 20, 0, tzinfo=UTC)
    edition = build(session, daily_list, date(2025, 5, 15), early, settings).edition
    assert edition.cutoff == datetime(2025, 5, 15, 7, 0, tzinfo=UTC)
    assert all(item.post.published_at <= edition.cutoff for item in edition.items)
