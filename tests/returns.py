"""Mail that comes back, for tests: an edition sent to its readers, and what came back of it,
applied through the bounce policy as the inbound pipeline would."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.fanout import pending_batches
from newsletter.delivery.transports import MemoryTransport
from newsletter.editions.lifecycle import start_sending
from newsletter.editions.sending import run_batch
from newsletter.inbound.policy import Signal, apply
from newsletter.models import Edition, MailEvent, MailEventKind, NewsletterList, Subscriber
from tests.factories import edition_with_readers


def sent_edition(
    session: Session, nl: NewsletterList, readers: list[str], *, now: datetime, settings: Settings
) -> Edition:
    """An edition of ``nl`` built, sent to ``readers`` and accepted for all of them at ``now``."""
    edition = edition_with_readers(session, nl, readers, now=now, settings=settings)
    start_sending(session, edition.id, now=now)
    session.commit()
    for batch in pending_batches(session, edition.id, batch_size=100):
        run_batch(session, batch, MemoryTransport(), settings, clock=lambda: now)
    session.commit()
    session.refresh(edition)
    return edition


def reader_id(session: Session, email: str) -> int:
    return session.scalars(select(Subscriber.id).where(Subscriber.email == email)).one()


def came_back(
    session: Session,
    edition: Edition,
    email: str,
    kind: MailEventKind,
    *,
    settings: Settings,
    now: datetime,
    category: str = "",
    action: str = "failed",
    status: str = "",
    reason: str = "",
    diagnostic: str = "",
    address: str = "",
) -> MailEvent:
    """What a returned message about ``email``'s copy of ``edition`` said, applied and
    committed, as if its VERP tag named the edition and reader."""
    signal = Signal(
        kind, address=address or email, category=category, action=action, status=status,
        reason=reason, diagnostic=diagnostic, subscriber_id=reader_id(session, email),
        edition_id=edition.id, list_id=edition.list_id,
    )  # fmt: skip
    event = apply(session, signal, source="smtp", settings=settings, now=now)
    session.commit()
    return event


def hard_bounce(
    session: Session, edition: Edition, email: str, *, settings: Settings, now: datetime
) -> MailEvent:
    return came_back(
        session, edition, email, MailEventKind.BOUNCE, category="hard", status="5.1.1",
        reason="user_unknown", diagnostic="550 5.1.1 <x>: Recipient address rejected",
        settings=settings, now=now,
    )  # fmt: skip


def soft_bounce(
    session: Session, edition: Edition, email: str, *, settings: Settings, now: datetime
) -> MailEvent:
    return came_back(
        session, edition, email, MailEventKind.BOUNCE, category="soft", status="4.2.2",
        reason="mailbox_full", diagnostic="452 4.2.2 Mailbox full", settings=settings, now=now,
    )  # fmt: skip


def sender_refusal(
    session: Session, edition: Edition, email: str, *, settings: Settings, now: datetime,
    diagnostic: str = "550 5.7.1 Message rejected as spam by Content Filtering",
) -> MailEvent:  # fmt: skip
    return came_back(
        session, edition, email, MailEventKind.BOUNCE, category="sender", status="5.7.1",
        reason="spam_blocked", diagnostic=diagnostic, settings=settings, now=now,
    )  # fmt: skip


def complaint(
    session: Session, edition: Edition, email: str, *, settings: Settings, now: datetime
) -> MailEvent:
    return came_back(
        session, edition, email, MailEventKind.COMPLAINT, reason="abuse", settings=settings,
        now=now,
    )  # fmt: skip
