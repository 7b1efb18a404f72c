"""Returned messages stored as the inbound pipeline leaves them, for the pages and commands
that show them to an operator: one processed with its events, one that failed, one waiting."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.inbound import intake, process
from newsletter.inbound.policy import Signal
from newsletter.models import InboundMessage, MailEventKind

# A short bounce, as a mail server words one.
DSN = (
    b"From: Mail Delivery System <MAILER-DAEMON@mta.example.net>\r\n"
    b"To: bounces+abc123@bounces.example.com\r\n"
    b"Subject: Undelivered Mail Returned to Sender\r\n"
    b"Auto-Submitted: auto-replied\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"<ann@example.com>: host mx.example.com said: 550 5.1.1 User unknown\r\n"
)
# What anyone may send to the bounce address: markup, script and terminal escapes.
HOSTILE = (
    b"From: <script>alert('from')</script> <x@evil.example>\r\n"
    b"Subject: [bold red]shout[/] <script>alert(1)</script> \x1b[2J cleared\r\n"
    b'Content-Type: multipart/mixed; boundary="never-closed"\r\n'
    b"\r\n"
    b"--never-closed\r\n"
    b"<script>alert(document.cookie)</script>\r\n"
    b"\xff\xfe not UTF-8\r\n"
)
TRACEBACK = "ValueError: the MIME structure is broken\nTraceback (most recent call last): ..."


def processed_bounce(
    session: Session, address: str, *, settings: Settings, now: datetime, event_id: str = "ev-1"
) -> int:
    """A provider's hard bounce of ``address``, recorded and applied (the reader blocked)."""
    signal = Signal(
        MailEventKind.BOUNCE, address=address, category="hard", reason="user_unknown",
        status="5.1.1", diagnostic="550 5.1.1 User unknown", address_trusted=True,
    )  # fmt: skip
    process.record_provider_event(
        session, DSN, [signal], source="mailgun", external_id=event_id, settings=settings,
        now=now,
    )  # fmt: skip
    session.commit()
    return stored_id(session, "mailgun", event_id)


def failed_message(session: Session, raw: bytes, *, now: datetime, error: str = TRACEBACK) -> int:
    """A message taken over SMTP whose processing failed with ``error``."""
    message_id = intake.store(session, raw, source="smtp", now=now, recipients=["bounces@x"])
    assert message_id is not None
    intake.mark_failed(session, message_id, error)
    session.commit()
    return message_id


def waiting_message(session: Session, raw: bytes, *, now: datetime) -> int:
    """A message stored and not processed yet."""
    message_id = intake.store(session, raw, source="smtp", now=now)
    assert message_id is not None
    session.commit()
    return message_id


def stored_id(session: Session, source: str, external_id: str) -> int:
    return session.scalars(
        select(InboundMessage.id).where(
            InboundMessage.source == source, InboundMessage.external_id == external_id
        )
    ).one()
