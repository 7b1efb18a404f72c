"""A real SMTP server that refuses a reader's confirmation request at RCPT TO: the refusal
goes through the bounce policy, as a digest's does, before it is raised."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.clock import FrozenClock
from newsletter.config import Settings
from newsletter.delivery.errors import PermanentFailure
from newsletter.handoff import send_notice
from newsletter.models import Frequency, MailEvent, NewsletterList, Subscriber, SubscriberStatus
from newsletter.subscriptions import readers
from newsletter.subscriptions.consent import Client
from tests.smtp_server import RecordingHandler, SMTPServer

pytestmark = pytest.mark.integration

ANN = "ann@example.org"


@pytest.fixture
def ann(session: Session, daily_list: NewsletterList, now: datetime) -> Subscriber:
    """Ann, who just signed up: her confirmation request is due."""
    signup = readers.request_signup(
        session, email=ANN, name="Ann", lists=[daily_list], frequency=Frequency.DAILY,
        client=Client(source="form"), wording="Sign up", now=now,
    )  # fmt: skip
    session.commit()
    reader = session.get(Subscriber, signup.subscriber_id)
    assert reader is not None
    return reader


@pytest.fixture
def through(smtp_server: SMTPServer, settings: Settings) -> Settings:
    """The settings with NEWSLETTER_SMTP_URL pointing at the test's SMTP server."""
    return settings.model_copy(update={"smtp_url": smtp_server.url, "redis_url": ""})


def confirm_to(
    ann: Subscriber, daily_list: NewsletterList, settings: Settings, clock: FrozenClock
) -> PermanentFailure:
    with pytest.raises(PermanentFailure) as refused:
        send_notice("confirm", ann.id, [daily_list.id], settings, clock)
    return refused.value


def status_of(session: Session, reader: Subscriber) -> SubscriberStatus:
    session.expire_all()
    return reader.status


def test_a_confirmation_refused_as_an_unknown_user_blocks_the_reader(
    smtp: RecordingHandler, session: Session, ann: Subscriber, daily_list: NewsletterList,
    through: Settings, clock: FrozenClock,
) -> None:  # fmt: skip
    smtp.rcpt_replies[ANN] = "550 5.1.1 <ann@example.org>: Recipient address rejected: User unknown"

    confirm_to(ann, daily_list, through, clock)

    assert status_of(session, ann) == SubscriberStatus.BLOCKED
    assert "5.1.1" in ann.blocked_reason
    event = session.scalars(select(MailEvent)).one()
    assert (event.subscriber_id, event.edition_id, event.category) == (ann.id, None, "hard")


def test_a_confirmation_refused_for_our_own_reputation_leaves_the_reader_alone(
    smtp: RecordingHandler, session: Session, ann: Subscriber, daily_list: NewsletterList,
    through: Settings, clock: FrozenClock,
) -> None:  # fmt: skip
    smtp.rcpt_replies[ANN] = "554 5.7.1 Client host rejected: blocked using zen.spamhaus.org"

    confirm_to(ann, daily_list, through, clock)

    assert status_of(session, ann) == SubscriberStatus.ACTIVE
    assert session.scalars(select(MailEvent.outcome)).all() == ["counted"]


def test_once_blocked_the_reader_is_sent_no_further_notice(
    smtp: RecordingHandler, session: Session, ann: Subscriber, daily_list: NewsletterList,
    through: Settings, clock: FrozenClock,
) -> None:  # fmt: skip
    smtp.rcpt_replies[ANN] = "550 5.1.1 <ann@example.org>: Recipient address rejected: User unknown"
    confirm_to(ann, daily_list, through, clock)

    assert send_notice("welcome", ann.id, [daily_list.id], through, clock) is False
    assert smtp.received == []
