"""From a stored returned message, or a refusal at send time, to what it does to a reader."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.prepared import prepare_edition
from newsletter.delivery.verp import DIGEST, Tag, make_tag
from newsletter.inbound import intake
from newsletter.inbound.policy import Signal
from newsletter.inbound.process import events_of, process, record_provider_event, record_refusals
from newsletter.models import (
    Delivery,
    Edition,
    InboundMessage,
    MailEventKind,
    NewsletterList,
    Subscriber,
    SubscriberStatus,
    SubscriptionStatus,
)
from newsletter.subscriptions.tokens import UNSUBSCRIBE, make_token
from tests.unit.inbound.conftest import (
    ANN,
    BOUNCE_ADDRESS,
    lists_of,
    postfix_dsn,
    reader,
    sending_to,
    stored,
    subscribed,
    verp_address,
)

CONFIRMED, UNSUBSCRIBED = SubscriptionStatus.CONFIRMED, SubscriptionStatus.UNSUBSCRIBED


@pytest.fixture
def edition(
    session: Session,
    daily_list: NewsletterList,
    weekly_list: NewsletterList,
    settings: Settings,
    now: datetime,
) -> Edition:
    """Today's daily edition, being sent to Ann (who also reads the weekly) and Bob."""
    subscribed(session, ANN, [weekly_list], now=now)
    return sending_to(session, daily_list, [ANN, "bob@example.com"], settings=settings, now=now)


@pytest.fixture
def ann(session: Session, edition: Edition) -> Subscriber:
    return reader(session, ANN)


def bounced(
    session: Session, ann: Subscriber, edition: Edition, settings: Settings, now: datetime
) -> int:
    """Postfix's bounce of the edition's message to Ann, stored, sent to its VERP address."""
    to = verp_address(settings, ann.id, edition.id)
    return stored(session, postfix_dsn(return_path=to, failed=ANN), to=to, now=now)


def test_a_bounce_to_a_readers_return_path_blocks_them(
    session: Session, ann: Subscriber, edition: Edition, settings: Settings, now: datetime
) -> None:
    message_id = bounced(session, ann, edition, settings, now)

    assert process(session, message_id, settings=settings, now=now) == [edition.id]

    assert ann.status == SubscriberStatus.BLOCKED
    assert "5.1.1" in ann.blocked_reason


def test_a_message_processed_twice_is_recorded_once(
    session: Session, ann: Subscriber, edition: Edition, settings: Settings, now: datetime
) -> None:
    message_id = bounced(session, ann, edition, settings, now)
    process(session, message_id, settings=settings, now=now)

    assert process(session, message_id, settings=settings, now=now) == []

    assert [event.outcome for event in events_of(session, message_id)] == ["blocked"]


def test_a_bounce_to_a_forged_return_path_blocks_nobody(
    session: Session, ann: Subscriber, edition: Edition, settings: Settings, now: datetime
) -> None:
    forged = make_tag("not-our-secret", Tag(DIGEST, ann.id, edition.id))
    to = f"bounces+{forged}@bounces.example.com"
    message_id = stored(session, postfix_dsn(return_path=to, failed=ANN), to=to, now=now)

    process(session, message_id, settings=settings, now=now)

    assert [event.outcome for event in events_of(session, message_id)] == ["ignored"]
    assert ann.status == SubscriberStatus.ACTIVE


def test_a_bounce_without_a_tag_finds_the_reader_by_our_signed_message_id(
    session: Session, ann: Subscriber, edition: Edition, settings: Settings, now: datetime
) -> None:
    delivery = session.scalar(
        select(Delivery).where(Delivery.edition_id == edition.id, Delivery.subscriber_id == ann.id)
    )
    assert delivery is not None
    ours = prepare_edition(edition, settings, now=now).message_id(delivery.id)
    raw = postfix_dsn(return_path=BOUNCE_ADDRESS, failed=ANN, message_id=ours)
    message_id = stored(session, raw, to=BOUNCE_ADDRESS, now=now)

    process(session, message_id, settings=settings, now=now)

    assert ann.status == SubscriberStatus.BLOCKED


# What our inbound server writes above a message whose From domain passed DMARC.
DMARC_PASS = (
    "mx.news.example.com; spf=pass smtp.mailfrom=example.com; dmarc=pass header.from=example.com"
)


def unsubscribe_request(sender: str, subject: str, *, authentication: str = "") -> bytes:
    return (
        (f"Authentication-Results: {authentication}\r\n" if authentication else "")
        + f"From: {sender}\r\nTo: unsubscribe@news.example.com\r\nSubject: {subject}\r\n"
        "Message-ID: <request-1@mail.example.com>\r\n\r\nPlease take me off.\r\n"
    ).encode()


def test_an_email_unsubscribe_with_the_readers_token_leaves_that_list(
    session: Session,
    ann: Subscriber,
    daily_list: NewsletterList,
    settings: Settings,
    now: datetime,
) -> None:
    token = make_token(settings.secret_key, UNSUBSCRIBE, ann.id, daily_list.id, ann.token_key)
    # Sent from another of Ann's addresses: the token, not the sender, names her.
    raw = unsubscribe_request("Ann at work <ann@work.example.org>", f"unsubscribe {token}")
    message_id = stored(session, raw, to=settings.unsubscribe_mailbox, now=now)

    process(session, message_id, settings=settings, now=now)

    assert lists_of(session, ann.id) == {"daily": UNSUBSCRIBED, "weekly": CONFIRMED}


def test_an_email_unsubscribe_from_the_readers_authenticated_address_leaves_all_their_lists(
    session: Session, ann: Subscriber, settings: Settings, now: datetime
) -> None:
    raw = unsubscribe_request(f"Ann <{ANN}>", "unsubscribe", authentication=DMARC_PASS)
    message_id = stored(session, raw, to=settings.unsubscribe_mailbox, now=now, envelope_from=ANN)

    process(session, message_id, settings=settings, now=now)

    assert lists_of(session, ann.id) == {"daily": UNSUBSCRIBED, "weekly": UNSUBSCRIBED}
    assert ann.status == SubscriberStatus.ACTIVE


def test_an_email_unsubscribe_from_an_unauthenticated_address_changes_nothing(
    session: Session, ann: Subscriber, settings: Settings, now: datetime
) -> None:
    # Anyone can write Ann's address in a From header.
    raw = unsubscribe_request(f"Ann <{ANN}>", "unsubscribe")
    message_id = stored(session, raw, to=settings.unsubscribe_mailbox, now=now, envelope_from=ANN)

    process(session, message_id, settings=settings, now=now)

    assert lists_of(session, ann.id) == {"daily": CONFIRMED, "weekly": CONFIRMED}
    [event] = events_of(session, message_id)
    assert (event.outcome, event.reason) == ("ignored", "unauthenticated")


def test_an_email_unsubscribe_authenticated_by_another_server_changes_nothing(
    session: Session, ann: Subscriber, settings: Settings, now: datetime
) -> None:
    ours = settings.model_copy(update={"inbound_authserv_id": "mx.news.example.com"})
    forged = DMARC_PASS.replace("mx.news.example.com", "mx.forger.example")
    raw = unsubscribe_request(f"Ann <{ANN}>", "unsubscribe", authentication=forged)
    message_id = stored(session, raw, to=settings.unsubscribe_mailbox, now=now, envelope_from=ANN)

    process(session, message_id, settings=ours, now=now)

    assert lists_of(session, ann.id) == {"daily": CONFIRMED, "weekly": CONFIRMED}


def test_an_auto_reply_to_a_readers_return_path_changes_nothing(
    session: Session, ann: Subscriber, edition: Edition, settings: Settings, now: datetime
) -> None:
    to = verp_address(settings, ann.id, edition.id)
    raw = (
        f"From: Ann <{ANN}>\r\nTo: {to}\r\nSubject: Away until Monday\r\n"
        "Auto-Submitted: auto-replied\r\nMessage-ID: <away-1@example.com>\r\n\r\n"
        "I am away and will read your message when I am back.\r\n"
    ).encode()
    message_id = stored(session, raw, to=to, now=now)

    process(session, message_id, settings=settings, now=now)

    assert [event.kind for event in events_of(session, message_id)] == ["auto_reply"]
    assert (ann.status, ann.bounce_score) == (SubscriberStatus.ACTIVE, 0)
    assert lists_of(session, ann.id) == {"daily": CONFIRMED, "weekly": CONFIRMED}


def test_a_malformed_message_is_kept_and_processed_without_blocking_anyone(
    session: Session, ann: Subscriber, edition: Edition, settings: Settings, now: datetime
) -> None:
    garbage = b"\xff\xfe\x00 not mail\r\nContent-Type: multipart/mixed; boundary=\r\n--\x00\x01"
    to = verp_address(settings, ann.id, edition.id)
    message_id = stored(session, garbage, to=to, now=now)

    process(session, message_id, settings=settings, now=now)

    message = session.get(InboundMessage, message_id)
    assert message is not None
    assert (message.raw, message.kind) == (garbage, "other")
    assert message.error
    assert ann.status == SubscriberStatus.ACTIVE
    assert lists_of(session, ann.id) == {"daily": CONFIRMED, "weekly": CONFIRMED}


def test_a_server_refusing_a_dead_address_at_send_time_blocks_the_reader(
    session: Session, ann: Subscriber, edition: Edition, settings: Settings, now: datetime
) -> None:
    reply = "550 5.1.1 <x>: Recipient address rejected: User unknown in local recipient table"

    record_refusals(session, edition.id, [(ann.id, reply)], settings=settings, now=now)

    assert ann.status == SubscriberStatus.BLOCKED


def test_a_server_refusing_our_mail_at_send_time_leaves_the_reader_subscribed(
    session: Session, ann: Subscriber, edition: Edition, settings: Settings, now: datetime
) -> None:
    reply = "554 5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org"

    record_refusals(session, edition.id, [(ann.id, reply)], settings=settings, now=now)

    assert ann.status == SubscriberStatus.ACTIVE
    assert lists_of(session, ann.id) == {"daily": CONFIRMED, "weekly": CONFIRMED}


def test_a_provider_event_delivered_twice_is_applied_once(
    session: Session, ann: Subscriber, settings: Settings, now: datetime
) -> None:
    event = Signal(
        MailEventKind.BOUNCE, address=ANN, category="soft", reason="mailbox_full",
        address_trusted=True,
    )  # fmt: skip

    def deliver() -> list[int] | None:
        return record_provider_event(
            session, b'{"eventType": "Bounce"}', [event], source="ses", external_id="ses-1",
            settings=settings, now=now,
        )  # fmt: skip

    assert deliver() == []
    assert deliver() is None
    assert ann.bounce_score == settings.bounce_soft_score
    stored_events = session.scalars(select(InboundMessage).where(InboundMessage.source == "ses"))
    assert len(stored_events.all()) == 1


def test_purging_drops_old_raw_messages_and_keeps_their_events(
    session: Session, ann: Subscriber, edition: Edition, settings: Settings, now: datetime
) -> None:
    retention = timedelta(days=settings.inbound_retention_days)
    old = bounced(session, ann, edition, settings, now - retention - timedelta(days=1))
    process(session, old, settings=settings, now=now - retention - timedelta(days=1))
    recent = stored(session, b"Subject: recent\r\n\r\nhello\r\n", to=BOUNCE_ADDRESS, now=now)

    assert intake.purge_raw(session, now=now, retention=retention) == 1

    session.expire_all()
    assert session.scalar(select(InboundMessage.raw).where(InboundMessage.id == old)) is None
    assert session.scalar(select(InboundMessage.raw).where(InboundMessage.id == recent))
    assert [event.outcome for event in events_of(session, old)] == ["blocked"]
