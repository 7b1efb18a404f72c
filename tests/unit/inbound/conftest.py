"""Readers, editions being sent and returned mail for the inbound tests.

Every test here runs with a bounce address set, so digests and notices carry a signed VERP
return path, as they do in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings, get_settings
from newsletter.delivery.verp import DIGEST, ReturnPath, Tag
from newsletter.editions.lifecycle import start_sending
from newsletter.inbound import intake
from newsletter.lists.service import ListSpec, create_list
from newsletter.models import (
    ConsentEvent,
    Edition,
    NewsletterList,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from newsletter.subscriptions.service import Signup, find_subscriber, import_subscribers
from tests.factories import edition_with_readers

BOUNCE_ADDRESS = "bounces@bounces.example.com"
ANN = "ann@example.com"
# A real Postfix DSN, as Postfix wrote it for a message sent from bounces+abc123@bounces.test
# to nobody@dead.test; the tests put their own return path and reader in.
POSTFIX_DSN = Path(__file__).parents[2] / "data" / "dsn" / "postfix-user-unknown.eml"


@pytest.fixture
def settings(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The test settings with ``NEWSLETTER_BOUNCE_ADDRESS`` set."""
    monkeypatch.setenv("NEWSLETTER_BOUNCE_ADDRESS", BOUNCE_ADDRESS)
    get_settings.cache_clear()
    yield get_settings()
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def weekly_list(session: Session) -> NewsletterList:
    nl = create_list(
        session,
        ListSpec(slug="weekly", name="Shortlysts Weekly", from_address="weekly@example.com"),
    )
    session.commit()
    return nl


def subscribed(
    session: Session, email: str, lists: list[NewsletterList], *, now: datetime
) -> Subscriber:
    """A confirmed reader of each of ``lists``."""
    for nl in lists:
        import_subscribers(session, nl, [Signup(email)], now=now, source="test")
    reader = find_subscriber(session, email)
    assert reader is not None
    session.commit()
    return reader


def sending_to(
    session: Session, nl: NewsletterList, readers: list[str], *, settings: Settings, now: datetime
) -> Edition:
    """An edition of ``nl`` being sent to ``readers``: every delivery row exists, queued."""
    edition = edition_with_readers(session, nl, readers, now=now, settings=settings)
    start_sending(session, edition.id, now=now)
    session.commit()
    return edition


def reader(session: Session, email: str) -> Subscriber:
    found = find_subscriber(session, email)
    assert found is not None
    return found


def verp_address(settings: Settings, subscriber_id: int, edition_id: int) -> str:
    """The envelope sender of ``edition_id``'s digest to ``subscriber_id``."""
    return_path = ReturnPath.parse(settings.bounce_address, settings.secret_key)
    assert return_path is not None
    return return_path.address(Tag(DIGEST, subscriber_id, edition_id))


def postfix_dsn(
    *, return_path: str, failed: str, message_id: str = "<edition-1.reader-1@example.test>"
) -> bytes:
    """Postfix's "unknown user" DSN for a message from ``return_path`` to ``failed``."""
    return (
        POSTFIX_DSN.read_bytes()
        .replace(b"bounces+abc123@bounces.test", return_path.encode())
        .replace(b"nobody@dead.test", failed.encode())
        .replace(b"<edition-1.reader-1@example.test>", message_id.encode())
    )


def stored(session: Session, raw: bytes, *, to: str, now: datetime, envelope_from: str = "") -> int:
    """``raw`` as the SMTP server stores it: accepted for ``to``, not yet processed."""
    message_id = intake.store(
        session, raw, source="smtp", now=now, envelope_from=envelope_from, recipients=[to]
    )
    assert message_id is not None
    return message_id


def lists_of(session: Session, subscriber_id: int) -> dict[str, SubscriptionStatus]:
    """The reader's subscriptions, by list slug."""
    rows = session.execute(
        select(NewsletterList.slug, Subscription.status)
        .join(NewsletterList, NewsletterList.id == Subscription.list_id)
        .where(Subscription.subscriber_id == subscriber_id)
    )
    return {slug: status for slug, status in rows}


def consent_log(session: Session, subscriber_id: int) -> list[ConsentEvent]:
    return list(
        session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.subscriber_id == subscriber_id)
            .order_by(ConsentEvent.id)
        )
    )
