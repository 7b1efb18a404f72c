"""Steps the integration tests share: load the sample feed, add readers, wait for a send."""

from __future__ import annotations

import time
from datetime import datetime

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.send import Progress, progress
from newsletter.digest.build import build_edition
from newsletter.models import Edition, NewsletterList
from newsletter.posts.ingest import upsert_posts
from newsletter.posts.sources import parse_feed
from newsletter.resources import data_path
from newsletter.subscriptions.service import Signup, import_subscribers


def sample_edition(
    session: Session, nl: NewsletterList, readers: list[str], *, now: datetime, settings: Settings
) -> Edition:
    """Import the sample feed, subscribe ``readers`` and build the edition due at ``now``."""
    parsed = parse_feed(data_path("sample_feed.xml").read_bytes(), now=now)
    upsert_posts(session, parsed.posts)
    import_subscribers(session, nl, [Signup(r) for r in readers], now=now, source="test")
    edition = build_edition(session, nl, now.date(), now=now, settings=settings).edition
    session.commit()
    return edition


def wait_until_sent(edition_id: int, *, timeout: float = 60) -> Progress:
    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as session:
            state = progress(session, edition_id)
        if state.status == "sent" and state.remaining == 0:
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"edition {edition_id} not sent in {timeout}s: {state}")
        time.sleep(0.1)
