"""A real SMTP server that refuses at send time: a refused recipient is a bounce that came
back at once; a refused envelope sender is about our own mail and blocks no reader."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.clock import system_clock
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.handoff import InProcessHandoff
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    MailEvent,
    NewsletterList,
    Subscriber,
    SubscriberStatus,
)
from tests.factories import edition_with_readers
from tests.integration.helpers import wait_until_sent
from tests.smtp_server import RecordingHandler, SMTPServer

pytestmark = pytest.mark.integration

READERS = ["alive@example.org", "dead@example.org", "picky@example.org"]


class RefusingHandler(RecordingHandler):
    """Refuses dead@ as an unknown user, picky@'s message as spam, and, when told to, every
    envelope sender."""

    refuse_sender = False

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refuse_sender:
            return f"553 5.1.8 <{address}>: Sender address rejected: Domain not found"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address == "dead@example.org":
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if envelope.rcpt_tos == ["picky@example.org"]:
            return "550 5.7.1 Message rejected as spam by Content Filtering"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def refusing() -> Iterator[SMTPServer]:
    server = SMTPServer(RefusingHandler())
    server.start()
    yield server
    server.stop()


def _send(refusing: SMTPServer, session: Session, nl: NewsletterList, settings: Settings,
          now: datetime) -> int:  # fmt: skip
    edition = edition_with_readers(session, nl, READERS, now=now, settings=settings)
    laptop = settings.model_copy(update={
        "redis_url": "", "smtp_url": refusing.url, "bounce_address": "bounces@mail.example.com",
    })  # fmt: skip
    InProcessHandoff(laptop, system_clock).send_edition(edition.id)
    wait_until_sent(edition.id)
    return edition.id


def _statuses() -> dict[str, SubscriberStatus]:
    with session_scope() as session:
        rows = session.execute(select(Subscriber.email, Subscriber.status)).all()
        return {email: status for email, status in rows}


def test_a_recipient_refused_as_unknown_is_blocked_and_a_message_refused_as_spam_is_not(
    refusing: SMTPServer, session: Session, daily_list: NewsletterList, settings: Settings,
    now: datetime,
) -> None:  # fmt: skip
    edition_id = _send(refusing, session, daily_list, settings, now)

    assert _statuses() == {
        "alive@example.org": SubscriberStatus.ACTIVE,
        "dead@example.org": SubscriberStatus.BLOCKED,
        "picky@example.org": SubscriberStatus.ACTIVE,
    }
    with session_scope() as s:
        events = s.execute(
            select(MailEvent.domain, MailEvent.category, MailEvent.outcome, MailEvent.edition_id)
            .order_by(MailEvent.id)
        ).all()  # fmt: skip
    assert sorted(tuple(e) for e in events) == [
        ("example.org", "hard", "blocked", edition_id),
        ("example.org", "sender", "counted", edition_id),
    ]


def test_a_refused_envelope_sender_fails_the_messages_and_blocks_nobody(
    refusing: SMTPServer, session: Session, daily_list: NewsletterList, settings: Settings,
    now: datetime,
) -> None:  # fmt: skip
    handler = refusing.handler
    assert isinstance(handler, RefusingHandler)
    handler.refuse_sender = True

    edition_id = _send(refusing, session, daily_list, settings, now)

    with session_scope() as s:
        statuses = s.scalars(select(Delivery.status).where(Delivery.edition_id == edition_id))
        assert set(statuses) == {DeliveryStatus.FAILED}
        assert s.scalars(select(MailEvent)).all() == []
    assert set(_statuses().values()) == {SubscriberStatus.ACTIVE}
