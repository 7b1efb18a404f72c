"""Which posts an edition takes: the window, the categories, what was sent before, the cap."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta

from newsletter.editions.selection import Candidate, select_posts

START = datetime(2025, 5, 15, 7, 0, tzinfo=UTC)
CUTOFF = datetime(2025, 5, 16, 7, 0, tzinfo=UTC)


def choose(
    candidates: Iterable[Candidate],
    *,
    categories: Collection[str] = (),
    already_sent: Collection[int] = (),
    limit: int = 25,
) -> list[int]:
    return select_posts(
        candidates,
        window_start=START,
        cutoff=CUTOFF,
        categories=categories,
        already_sent=already_sent,
        limit=limit,
    )


def at(hours_after_start: float, post_id: int, category: str = "World") -> Candidate:
    return Candidate(post_id, START + timedelta(hours=hours_after_start), category)


def test_post_published_exactly_at_window_start_is_excluded() -> None:
    assert choose([Candidate(1, START, "World")]) == []


def test_post_published_exactly_at_cutoff_is_included() -> None:
    assert choose([Candidate(1, CUTOFF, "World")]) == [1]


def test_post_published_after_cutoff_is_excluded() -> None:
    assert choose([Candidate(1, CUTOFF + timedelta(seconds=1), "World")]) == []


def test_post_published_before_window_is_excluded() -> None:
    assert choose([Candidate(1, START - timedelta(hours=1), "World")]) == []


def test_category_filter_ignores_case() -> None:
    posts = [at(1, 1, "WORLD"), at(2, 2, "world"), at(3, 3, "Sports")]
    assert sorted(choose(posts, categories=["World"])) == [1, 2]


def test_category_filter_matches_any_listed_category() -> None:
    posts = [at(1, 1, "World"), at(2, 2, "Science"), at(3, 3, "Sports")]
    assert sorted(choose(posts, categories=["science", "sports"])) == [2, 3]


def test_no_categories_means_every_category() -> None:
    posts = [at(1, 1, "World"), at(2, 2, ""), at(3, 3, "Sports")]
    assert sorted(choose(posts)) == [1, 2, 3]


def test_uncategorised_post_is_left_out_of_a_filtered_list() -> None:
    assert choose([at(1, 1, "")], categories=["World"]) == []


def test_posts_already_in_an_earlier_edition_are_excluded() -> None:
    posts = [at(1, 1), at(2, 2), at(3, 3)]
    assert choose(posts, already_sent={2}) == [3, 1]


def test_newest_post_comes_first() -> None:
    posts = [at(1, 10), at(5, 11), at(3, 12)]
    assert choose(posts) == [11, 12, 10]


def test_posts_published_at_the_same_moment_are_ordered_by_id() -> None:
    same = [at(2, 7), at(2, 3), at(2, 5)]
    assert choose(same) == [7, 5, 3]
    assert choose(list(reversed(same))) == [7, 5, 3]


def test_limit_keeps_the_newest_posts() -> None:
    posts = [at(h, h) for h in range(1, 11)]
    assert choose(posts, limit=3) == [10, 9, 8]


def test_limit_of_zero_or_less_selects_nothing() -> None:
    posts = [at(1, 1)]
    assert choose(posts, limit=0) == []
    assert choose(posts, limit=-1) == []


def test_no_candidates_selects_nothing() -> None:
    assert choose([]) == []
