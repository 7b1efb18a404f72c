"""Rows for tests, built through the same domain functions the product uses."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.editions.build import build_edition
from newsletter.models import Edition, NewsletterList
from newsletter.posts.ingest import upsert_posts
from newsletter.posts.schema import PostIn
from newsletter.subscriptions.service import Signup, import_subscribers


def post(number: int, published_at: datetime, **overrides: object) -> PostIn:
    values: dict[str, object] = {
        "guid": f"post-{number}",
        "url": f"https://www.shortlysts.com/posts/post-{number}",
        "title": f"Story number {number}",
        "dek": f"The dek of story {number}.",
        "body_html": (
            f"<h2>What Happened?</h2><p>Something happened in story {number} and it matters "
            "to many readers across the country.</p>"
        ),
        "category": "World",
        "published_at": published_at,
    }
    values.update(overrides)
    return PostIn.model_validate(values)


def edition_with_readers(
    session: Session,
    nl: NewsletterList,
    readers: list[str],
    *,
    now: datetime,
    settings: Settings,
    posts: int = 3,
) -> Edition:
    upsert_posts(session, [post(i, now - timedelta(hours=2 + i)) for i in range(posts)])
    import_subscribers(session, nl, [Signup(r) for r in readers], now=now, source="test")
    edition = build_edition(session, nl, now.date(), now=now, settings=settings).edition
    session.commit()
    return edition


def key_of(subscriber_id: int) -> str:
    """The reader's token_key, signed into their links ("" if there is no such reader)."""
    from newsletter.config import get_settings
    from newsletter.db import session_factory
    from newsletter.models import Subscriber

    with session_factory(get_settings().database_url)() as session:
        subscriber = session.get(Subscriber, subscriber_id)
        return subscriber.token_key if subscriber is not None else ""
