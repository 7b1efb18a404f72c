"""Polling RSS and Atom feeds for new posts, politely and without letting one bad feed stick.

A feed is due at ``next_poll_at``. A poll fetches it with a conditional GET (ETag and
Last-Modified from the last answer), parses it and stores its posts. Success schedules the
next poll ``poll_minutes`` later. A failure of any kind (HTTP error, timeout, an answer too
large, a document that is not a feed) is written to ``last_error`` in words an editor reads
on the dashboard, and doubles the wait (at most a day); ``feed_max_errors`` failures in a
row pause the feed until an editor resumes it.

The one I/O seam is ``fetch`` (:func:`fetch_feed`, by default: the fetching of
:mod:`newsletter.posts.fetch`, which `posts import URL` shares). Relative links in a feed are
resolved against its URL. A feed on a loopback or private address is refused when added and
at every poll, unless the install allows private feeds.

Exceptions::

    FeedError (ValueError)   a request an editor made cannot be done: bad URL, no such feed
    FetchError (Exception)   the feed could not be fetched; recorded, never raised to callers
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import affected_rows, session_scope
from newsletter.models import Feed
from newsletter.posts.fetch import (
    AddressRefused,
    Fetched,
    FetchError,
    FetchRules,
    fetch,
    refuse_private_host,
)
from newsletter.posts.ingest import upsert_posts
from newsletter.posts.sources import SourceError, parse_feed

log = logging.getLogger(__name__)

MAX_WAIT = timedelta(hours=24)
ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.1"
MAX_POLL_MINUTES = 24 * 60


class FeedError(ValueError):
    """An editor's request about a feed cannot be done; the message says why."""


# --- Fetching ------------------------------------------------------------------------------


class Fetch(Protocol):
    def __call__(
        self, url: str, rules: FetchRules, *, etag: str, last_modified: str
    ) -> Fetched: ...


def fetch_feed(url: str, rules: FetchRules, *, etag: str, last_modified: str) -> Fetched:
    """GET a feed, conditionally: :func:`newsletter.posts.fetch.fetch` (address checks, one
    deadline, a size limit) asking for a feed; raises :class:`FetchError` in words."""
    return fetch(url, rules, accept=ACCEPT, etag=etag, last_modified=last_modified)


def fetch_rules(settings: Settings) -> FetchRules:
    return FetchRules(
        deadline=settings.feed_timeout,
        max_bytes=settings.feed_max_bytes,
        allow_private=settings.allow_private_feeds,
    )


# --- Feeds ---------------------------------------------------------------------------------


def _check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FeedError(f"{url!r} is not an http(s) URL such as https://example.com/feed.xml")
    if any(c in url for c in "\r\n\t "):
        raise FeedError("a feed URL cannot contain spaces or line breaks")
    if len(url) > 2000:
        raise FeedError("that URL is longer than 2,000 characters")
    return url


def add_feed(
    session: Session, url: str, name: str = "", poll_minutes: int = 15, *, now: datetime,
    allow_private: bool = False,
) -> Feed:  # fmt: skip
    """A new feed, first polled at ``now`` (by the next run of the poller). One on a loopback
    or private address is refused unless ``allow_private`` (every poll checks again)."""
    url = _check_url(url)
    if not allow_private:
        try:
            refuse_private_host(url)
        except AddressRefused as error:
            raise FeedError(f"{url} cannot be polled: {error}") from None
    if not 1 <= poll_minutes <= MAX_POLL_MINUTES:
        raise FeedError(f"poll every 1 to {MAX_POLL_MINUTES} minutes (a day), not {poll_minutes}")
    existing = session.scalar(select(Feed).where(Feed.url == url))
    if existing is not None:
        raise FeedError(f"feed {existing.id} polls {url} already")
    name = " ".join(name.split())[:200] or (urlsplit(url).hostname or url)
    feed = Feed(url=url, name=name, poll_minutes=poll_minutes, next_poll_at=now)
    session.add(feed)
    session.flush()
    return feed


def get_feed(session: Session, feed_id: int) -> Feed:
    feed = session.get(Feed, feed_id)
    if feed is None:
        raise FeedError(f"there is no feed {feed_id} (see `newsletter feeds list`)")
    return feed


def list_feeds(session: Session) -> list[Feed]:
    return list(session.scalars(select(Feed).order_by(Feed.id)))


def feed_status(feed: Feed) -> Literal["ok", "failing", "paused"]:
    """One word for lists and the dashboard: paused waits for an editor, failing backs off."""
    if feed.paused_at is not None:
        return "paused"
    return "failing" if feed.consecutive_errors else "ok"


def due_feeds(session: Session, now: datetime) -> list[Feed]:
    """Feeds whose time has come, longest waiting first; paused ones wait for an editor."""
    return list(
        session.scalars(
            select(Feed)
            .where(Feed.paused_at.is_(None), Feed.next_poll_at <= now)
            .order_by(Feed.next_poll_at, Feed.id)
        )
    )


def resume_feed(feed: Feed, now: datetime) -> None:
    """Poll a paused (or failing) feed again at once, its backoff forgotten."""
    feed.paused_at = None
    feed.consecutive_errors = 0
    feed.next_poll_at = now


# --- Polling -------------------------------------------------------------------------------


@dataclass
class PollResult:
    feed_id: int
    ok: bool
    not_modified: bool = False
    created: int = 0
    updated: int = 0
    error: str = ""
    paused: bool = False
    # Items of a readable feed that were not valid posts (the rest were stored).
    item_errors: list[str] = field(default_factory=list)


def poll_feed(
    session: Session, feed: Feed, now: datetime, settings: Settings, fetch: Fetch = fetch_feed
) -> PollResult:
    """Fetch, parse and store one feed, and schedule its next poll. Never raises for the
    feed's own faults: they are recorded on it. The caller commits."""
    try:
        fetched = fetch(
            feed.url, fetch_rules(settings), etag=feed.etag, last_modified=feed.last_modified
        )
        result = PollResult(feed.id, ok=True, not_modified=fetched.not_modified)
        if not fetched.not_modified:
            parsed = parse_feed(fetched.content, now=now, base_url=fetched.url or feed.url)
            with session.begin_nested():
                report = upsert_posts(session, parsed.posts, undated=parsed.undated)
            result.created, result.updated = report.created, report.updated
            result.item_errors = parsed.errors
    except (FetchError, SourceError) as error:
        return _failed(feed, str(error), now, settings)
    except IntegrityError:
        # Another feed stored one of these posts at the same moment; the next poll finds it.
        return _failed(feed, "its posts clashed with an import running at the same time", now,
                       settings)  # fmt: skip
    feed.last_polled_at = feed.last_success_at = now
    feed.etag, feed.last_modified = fetched.etag[:500], fetched.last_modified[:100]
    feed.consecutive_errors, feed.last_error = 0, ""
    feed.next_poll_at = now + timedelta(minutes=feed.poll_minutes)
    return result


def _failed(feed: Feed, error: str, now: datetime, settings: Settings) -> PollResult:
    feed.last_polled_at = now
    feed.consecutive_errors += 1
    feed.last_error = error
    # The exponent is bounded too: with a high feed_max_errors, 2**n minutes would overflow.
    wait = timedelta(minutes=feed.poll_minutes * 2 ** min(feed.consecutive_errors, 16))
    feed.next_poll_at = now + min(wait, MAX_WAIT)
    paused = feed.consecutive_errors >= settings.feed_max_errors
    if paused:
        feed.paused_at = now
    log.warning(
        "feed %s (%s) failed %s time(s) in a row%s: %s",
        feed.id, feed.url, feed.consecutive_errors, ", paused" if paused else "", error,
    )  # fmt: skip
    return PollResult(feed.id, ok=False, error=error, paused=paused)


def claim_feed(session: Session, feed_id: int, *, now: datetime, hold: timedelta) -> bool:
    """Take a due feed for one poller: its next poll moves ``hold`` ahead, so a second poller
    (an overlapping beat run, the CLI) skips it; if this one dies, the feed is due again."""
    claimed = session.execute(
        update(Feed)
        .where(Feed.id == feed_id, Feed.paused_at.is_(None), Feed.next_poll_at <= now)
        .values(next_poll_at=now + hold)
        .execution_options(synchronize_session=False)
    )
    return affected_rows(claimed) > 0


def poll_due_feed(
    feed_id: int, settings: Settings, *, clock: Callable[[], datetime], fetch: Fetch = fetch_feed
) -> PollResult | None:
    """Poll one due feed in units of work of its own, for the beat task and the CLI.

    Claimed and committed first, then fetched and recorded in a second transaction: one bad
    feed cannot roll back another's posts. None when another poller had it first.
    """
    hold = timedelta(seconds=settings.feed_timeout * 2 + 60)
    with session_scope(settings.database_url) as session:
        if not claim_feed(session, feed_id, now=clock(), hold=hold):
            return None
    with session_scope(settings.database_url) as session:
        return poll_feed(session, get_feed(session, feed_id), clock(), settings, fetch)
