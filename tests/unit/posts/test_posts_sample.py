"""The bundled sample feed, dated into today's editions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from newsletter.posts.sample import SAMPLE_MARGIN, SAMPLE_SPAN, sample_posts

CUTOFF = datetime(2027, 3, 28, 11, 0, tzinfo=UTC)


def test_the_newest_sample_post_comes_just_before_the_cutoff() -> None:
    posts = sample_posts(before=CUTOFF, now=CUTOFF)

    assert max(p.published_at for p in posts) == CUTOFF - SAMPLE_MARGIN


def test_the_sample_falls_within_a_day_before_the_cutoff() -> None:
    posts = sample_posts(before=CUTOFF, now=CUTOFF)

    assert min(p.published_at for p in posts) >= CUTOFF - SAMPLE_MARGIN - SAMPLE_SPAN
    assert timedelta(hours=24) > SAMPLE_SPAN  # inside a first edition's default look-back


def test_the_sample_keeps_the_feeds_order() -> None:
    posts = sample_posts(before=CUTOFF, now=CUTOFF)
    original = sample_posts(before=CUTOFF + timedelta(days=400), now=CUTOFF)

    assert [p.guid for p in sorted(posts, key=lambda p: p.published_at)] == [
        p.guid for p in sorted(original, key=lambda p: p.published_at)
    ]
