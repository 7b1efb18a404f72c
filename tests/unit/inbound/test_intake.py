"""Storing what comes back, beyond the message itself: spent signature tokens, and failed
messages put back to be processed again."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.inbound import intake, process
from newsletter.models import InboundMessage, InboundStatus

TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f00123456789abcdef01"


def test_a_signature_token_is_spent_once(session: Session, now: datetime) -> None:
    assert intake.spend_token(session, "mailgun", TOKEN, now=now)

    assert not intake.spend_token(session, "mailgun", TOKEN, now=now)


def test_a_spent_token_is_no_message_to_process(session: Session, now: datetime) -> None:
    intake.spend_token(session, "mailgun", TOKEN, now=now)

    assert intake.pending(session) == []


def test_tokens_are_forgotten_a_day_after_they_were_spent(session: Session, now: datetime) -> None:
    intake.spend_token(session, "mailgun", "old-" + TOKEN, now=now - timedelta(days=1, hours=1))
    intake.spend_token(session, "mailgun", TOKEN, now=now - timedelta(hours=23))
    intake.store(session, b"Subject: a bounce\r\n\r\n", source="smtp", now=now)

    assert intake.forget_tokens(session, now=now + timedelta(hours=1)) == 1
    sources = session.scalars(select(InboundMessage.source).order_by(InboundMessage.id)).all()
    assert sources == ["mailgun-token", "smtp"]


def test_retrying_failed_messages_puts_them_back_to_be_processed(
    session: Session, now: datetime
) -> None:
    failed = intake.store(session, b"Subject: broken\r\n\r\n", source="smtp", now=now)
    waiting = intake.store(session, b"Subject: waiting\r\n\r\n", source="smtp", now=now)
    assert failed is not None
    assert waiting is not None
    intake.mark_failed(session, failed, "ValueError: no\nmore lines")

    assert intake.retry_failed(session) == 1
    assert intake.pending(session) == [failed, waiting]
    row = session.get(InboundMessage, failed)
    assert row is not None
    session.refresh(row)
    assert (row.status, row.error) == (InboundStatus.RECEIVED, "")


def test_a_provider_event_rolled_back_leaves_nothing_stored(
    session: Session, settings: Settings, now: datetime
) -> None:
    """Recording failed after the store: the whole event is gone, so the provider's retry
    is recorded rather than taken for a duplicate."""
    process.record_provider_event(
        session, b"{}", [], source="ses", external_id="event-1", settings=settings, now=now
    )
    session.rollback()

    assert session.scalars(select(InboundMessage)).all() == []
