"""The circuit breaker: an edition whose first messages bounce or are reported pauses itself."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.editions import lifecycle
from newsletter.inbound import breaker
from newsletter.inbound.policy import Signal, apply
from newsletter.inbound.process import record_refusals
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Edition,
    EditionStatus,
    MailEventKind,
    NewsletterList,
    Subscriber,
    SubscriberStatus,
)
from tests.unit.inbound.conftest import sending_to

READERS = [f"reader{i}@example.com" for i in range(20)]
USER_UNKNOWN = "550 5.1.1 <x>: Recipient address rejected: User unknown in local recipient table"


@pytest.fixture
def breaker_settings(settings: Settings) -> Settings:
    """The breaker looks at the first 20 messages once 10 of them went out."""
    return settings.model_copy(update={"breaker_min_messages": 10, "breaker_sample": 20})


def sent(session: Session, edition: Edition, readers: int) -> list[int]:
    """The first ``readers`` deliveries went out; their readers' ids, in send order."""
    rows = session.execute(
        select(Delivery.id, Delivery.subscriber_id)
        .where(Delivery.edition_id == edition.id)
        .order_by(Delivery.id)
        .limit(readers)
    ).all()
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_([row.id for row in rows]))
        .values(status=DeliveryStatus.SENT)
    )
    return [row.subscriber_id for row in rows]


def dead(
    session: Session, edition: Edition, readers: list[int], settings: Settings, now: datetime
) -> None:
    """The server said each of ``readers`` does not exist."""
    refused = [(reader, USER_UNKNOWN) for reader in readers]
    record_refusals(session, edition.id, refused, settings=settings, now=now)


def complained(
    session: Session, edition: Edition, reader: int, settings: Settings, now: datetime
) -> None:
    complaint = Signal(MailEventKind.COMPLAINT, subscriber_id=reader, edition_id=edition.id)
    apply(session, complaint, source="smtp", settings=settings, now=now)


@pytest.fixture
def edition(
    session: Session, daily_list: NewsletterList, settings: Settings, now: datetime
) -> Edition:
    return sending_to(session, daily_list, READERS, settings=settings, now=now)


def test_an_edition_whose_first_messages_bounce_as_dead_pauses_itself(
    session: Session, edition: Edition, breaker_settings: Settings, now: datetime
) -> None:
    readers = sent(session, edition, 10)
    dead(session, edition, readers[:2], breaker_settings, now)

    assert breaker.check(session, edition.id, settings=breaker_settings, now=now)

    assert edition.status == EditionStatus.PAUSED
    assert edition.pause_reason.startswith("Paused itself at 07:30 UTC: 2 of the first 10")
    assert "dead addresses (20.0%, above 5.0%)" in edition.pause_reason


def test_bounces_among_fewer_than_the_minimum_of_messages_do_not_pause_it(
    session: Session, edition: Edition, breaker_settings: Settings, now: datetime
) -> None:
    readers = sent(session, edition, 9)
    dead(session, edition, readers, breaker_settings, now)

    assert not breaker.check(session, edition.id, settings=breaker_settings, now=now)

    assert edition.status == EditionStatus.SENDING


def test_complaints_above_a_tenth_of_a_percent_pause_it(
    session: Session, edition: Edition, breaker_settings: Settings, now: datetime
) -> None:
    readers = sent(session, edition, 20)
    complained(session, edition, readers[3], breaker_settings, now)
    complained(session, edition, readers[4], breaker_settings, now)

    assert breaker.check(session, edition.id, settings=breaker_settings, now=now)

    assert edition.status == EditionStatus.PAUSED
    assert "2 of the first 20 readers reported it as spam (10.00%, above 0.10%)" in (
        edition.pause_reason
    )


def test_one_complaint_alone_never_pauses_a_send(
    session: Session, edition: Edition, breaker_settings: Settings, now: datetime
) -> None:
    readers = sent(session, edition, 20)
    complained(session, edition, readers[3], breaker_settings, now)

    assert not breaker.check(session, edition.id, settings=breaker_settings, now=now)

    assert edition.status == EditionStatus.SENDING


def test_an_edition_an_editor_resumed_does_not_pause_itself_again(
    session: Session, edition: Edition, breaker_settings: Settings, now: datetime
) -> None:
    readers = sent(session, edition, 20)
    dead(session, edition, readers[:2], breaker_settings, now)
    breaker.check(session, edition.id, settings=breaker_settings, now=now)
    lifecycle.resume(session, edition)
    dead(session, edition, readers[2:6], breaker_settings, now)

    assert not breaker.check(session, edition.id, settings=breaker_settings, now=now)

    assert edition.status == EditionStatus.SENDING
    assert edition.pause_reason.startswith(lifecycle.OVERRIDDEN)


def test_an_edition_sent_in_full_is_left_alone(
    session: Session, edition: Edition, breaker_settings: Settings, now: datetime
) -> None:
    """Bounces keep coming back after the last message went out: nothing to pause."""
    readers = sent(session, edition, 20)
    lifecycle.finish_if_complete(session, edition.id, now=now)
    session.expire(edition)
    dead(session, edition, readers[:5], breaker_settings, now)

    assert not breaker.check(session, edition.id, settings=breaker_settings, now=now)

    assert edition.status == EditionStatus.SENT


def test_an_edition_that_finishes_while_the_breaker_looks_is_left_alone(
    session: Session, edition: Edition, breaker_settings: Settings, now: datetime
) -> None:
    """Another batch finished the send between the breaker's read and its pause."""
    readers = sent(session, edition, 20)
    dead(session, edition, readers[:5], breaker_settings, now)
    session.execute(
        update(Edition)
        .where(Edition.id == edition.id)
        .values(status=EditionStatus.SENT)
        .execution_options(synchronize_session=False)
    )

    assert not breaker.check(session, edition.id, settings=breaker_settings, now=now)

    session.refresh(edition)
    assert edition.status == EditionStatus.SENT
    blocked = session.scalars(
        select(Subscriber.id).where(Subscriber.status == SubscriberStatus.BLOCKED)
    )
    assert sorted(blocked) == sorted(readers[:5])


def test_an_edition_an_editor_resumed_stays_overridden_after_a_pause_by_hand(
    session: Session, edition: Edition, breaker_settings: Settings, now: datetime
) -> None:
    readers = sent(session, edition, 20)
    dead(session, edition, readers[:2], breaker_settings, now)
    breaker.check(session, edition.id, settings=breaker_settings, now=now)
    lifecycle.resume(session, edition)
    lifecycle.pause(session, edition)
    lifecycle.resume(session, edition)
    dead(session, edition, readers[2:6], breaker_settings, now)

    assert not breaker.check(session, edition.id, settings=breaker_settings, now=now)

    assert edition.status == EditionStatus.SENDING
    assert edition.pause_reason.count(lifecycle.OVERRIDDEN) == 1
