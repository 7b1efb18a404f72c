"""The bundled Shortlysts sample feed, dated into today's editions.

Its posts were published in May 2025, so imported as they are they fall before every list's
first edition and a newcomer's first ``digest build`` finds an empty day. Imported through
here, they keep their order and spacing but end just before the moment given.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from newsletter.posts.schema import PostIn
from newsletter.posts.sources import parse_feed
from newsletter.resources import data_path

SAMPLE_FEED = "sample_feed.xml"
# Spread over the hours before an edition's cutoff: within a first edition's look-back.
SAMPLE_SPAN = timedelta(hours=20)
# How long before that cutoff the newest sample post was published.
SAMPLE_MARGIN = timedelta(minutes=10)


def rebase(posts: list[PostIn], newest: datetime, span: timedelta) -> list[PostIn]:
    """``posts`` moved so the newest was published at ``newest``.

    Relative order is kept; the spread is scaled down to ``span`` so all fall in one day's
    window.
    """
    if not posts:
        return posts
    latest = max(p.published_at for p in posts)
    earliest = min(p.published_at for p in posts)
    scale = span / max(latest - earliest, timedelta(seconds=1))
    return [
        p.model_copy(update={"published_at": newest - (latest - p.published_at) * min(scale, 1.0)})
        for p in posts
    ]


def sample_posts(*, before: datetime, now: datetime) -> list[PostIn]:
    """The sample feed's posts, the newest published just before ``before`` (an edition's
    cutoff), the others in the hours ahead of it."""
    parsed = parse_feed(data_path(SAMPLE_FEED).read_bytes(), now=now)
    return rebase(parsed.posts, before - SAMPLE_MARGIN, SAMPLE_SPAN)
