"""Every kind of message the demo sends, as sent: the bytes that reach the SMTP server or the
Maildir, personalised for one reader, with what was compiled on the way.

- ``demo digest``: the edition ``newsletter demo`` builds (the sample feed, the demo list and
  readers), personalised for its first reader, as a batch personalises it.
- ``stress digest``: :mod:`tests.stress_edition`'s 25 posts, personalised the same way.
- one notice per template under ``templates/email/`` that is not the digest (``confirm``,
  ``welcome``), to the demo's first reader, as the notice tasks build them.

For the reference MJML compiler, SpamAssassin and size checks (tests/email_checks/,
bench/email_quality.py).
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

import pytest
from sqlalchemy.orm import Session

from newsletter.cli.demo import DEMO_LIST, DEMO_READERS
from newsletter.config import Settings, get_settings
from newsletter.db import Base, get_engine, session_factory
from newsletter.delivery import notices
from newsletter.delivery.prepared import Recipient, prepare_edition
from newsletter.editions.build import build_edition
from newsletter.lists.schedule import edition_cutoff, local_date
from newsletter.lists.service import create_list, find_list
from newsletter.models import Edition, NewsletterList, Subscriber
from newsletter.posts.ingest import upsert_posts
from newsletter.posts.sample import sample_posts
from newsletter.resources import resource_path
from newsletter.subscriptions.service import find_subscriber, import_subscribers
from tests.mjml_reference import mjml_compiled
from tests.moments import TEST_NOW
from tests.stress_edition import stress_edition

NoticeBuilder = Callable[..., notices.Notice | None]
# Each notice template (templates/email/<name>/) and what builds its message.
NOTICES: dict[str, NoticeBuilder] = {
    "confirm": notices.confirmation,
    "welcome": notices.welcome,
}
MESSAGES = ("demo digest", "stress digest", *sorted(NOTICES))


@dataclass(frozen=True)
class SentMessage:
    name: str
    data: bytes  # as sent
    html: str  # the compiled HTML, as rendering returned it
    mjml: tuple[str, ...]  # every MJML source mjml-python compiled for it


def body_parts(data: bytes) -> dict[str, str]:
    """A message's text parts, decoded, by content type."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return {
        part.get_content_type(): part.get_content()
        for part in message.walk()
        if part.get_content_maintype() == "text"
    }


def notice_templates() -> set[str]:
    """The folders under templates/email/ that hold a notice: all but the base and digest."""
    root = resource_path("templates", "email")
    return {p.name for p in root.iterdir() if p.is_dir() and p.name not in ("_base", "digest")}


def demo_edition(session: Session, *, now: datetime, settings: Settings) -> Edition:
    """What ``newsletter demo`` builds: its list, sample posts and readers, today's edition."""
    nl = create_list(session, DEMO_LIST)
    day = local_date(nl.timezone, now)
    cutoff = edition_cutoff(nl.schedule, nl.timezone, day, now)
    upsert_posts(session, sample_posts(before=cutoff, now=now))
    import_subscribers(session, nl, DEMO_READERS, now=now, source="demo")
    edition = build_edition(session, nl, day, now=now, settings=settings).edition
    session.commit()
    return edition


def _as_sent(edition: Edition, reader: Subscriber, settings: Settings, now: datetime) -> bytes:
    recipient = Recipient(reader.id, reader.id, reader.email, reader.token_key)
    return prepare_edition(edition, settings, now=now).personalise(recipient).data


def _digest(
    name: str, build: Callable[[], Edition], reader_email: str, session: Session,
    settings: Settings, now: datetime,
) -> SentMessage:  # fmt: skip
    with mjml_compiled() as sources:
        edition = build()
    reader = find_subscriber(session, reader_email)
    assert reader is not None
    data = _as_sent(edition, reader, settings, now)
    return SentMessage(name, data, edition.html, tuple(sources))


def _notice(
    name: str, reader: Subscriber, nl: NewsletterList, session: Session, settings: Settings,
    now: datetime,
) -> SentMessage:  # fmt: skip
    with mjml_compiled() as sources:
        notice = NOTICES[name](session, reader.id, [nl.id], settings=settings, now=now)
    assert notice is not None
    # A notice is rendered for its one reader: the HTML sent is the HTML rendered.
    return SentMessage(name, notice.data, body_parts(notice.data)["text/html"], tuple(sources))


def sent_messages(session: Session, *, now: datetime, settings: Settings) -> list[SentMessage]:
    """The demo's messages and the stress digest, built on ``session`` (which must be empty:
    the lists are created here) and committed."""
    first = DEMO_READERS[0].email
    messages = [
        _digest(
            "demo digest", lambda: demo_edition(session, now=now, settings=settings), first,
            session, settings, now,
        ),
        _digest(
            "stress digest", lambda: stress_edition(session, now=now, settings=settings),
            "reader@example.com", session, settings, now,
        ),
    ]  # fmt: skip
    reader, nl = find_subscriber(session, first), find_list(session, DEMO_LIST.slug)
    assert reader is not None
    assert nl is not None
    messages += [_notice(name, reader, nl, session, settings, now) for name in sorted(NOTICES)]
    assert tuple(m.name for m in messages) == MESSAGES
    return messages


@pytest.fixture(scope="module")
def sent(database_url: str) -> Iterator[dict[str, SentMessage]]:
    """Each message by name, built once per test module; every table is emptied afterwards."""
    get_settings.cache_clear()
    try:
        with session_factory(database_url)() as session:
            messages = sent_messages(session, now=TEST_NOW, settings=get_settings())
        yield {message.name: message for message in messages}
    finally:
        with get_engine(database_url).begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
