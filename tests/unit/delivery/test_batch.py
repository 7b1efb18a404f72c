"""The delivery ledger with an in-memory transport: exactly once, failures classified."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.errors import (
    ConnectionLost,
    PermanentFailure,
    TemporaryFailure,
    Throttled,
)
from newsletter.delivery.fanout import BatchRange, pending_batches
from newsletter.delivery.progress import progress
from newsletter.delivery.transports import MemoryTransport
from newsletter.editions.errors import TransitionError
from newsletter.editions.lifecycle import start_sending
from newsletter.editions.sending import run_batch
from newsletter.editions.service import Touches, edit
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    EditionStatus,
    NewsletterList,
    Subscription,
    SubscriptionStatus,
)
from tests.factories import edition_with_readers
from tests.moments import TEST_NOW
from tests.unit.delivery.test_headers import TEXTS, assert_well_folded, raw_value

READERS = ["ann@example.com", "bob@example.com", "cat@example.com", "dan@example.com"]


def clock() -> datetime:
    return datetime.now(UTC)


class FlakyTransport(MemoryTransport):
    """Fails the listed recipients with the given error, once each."""

    def __init__(self, failures: dict[str, Exception]) -> None:
        super().__init__()
        self.failures = failures

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        error = self.failures.pop(recipient, None)
        if error is not None:
            raise error
        super().send(sender, recipient, message)


@pytest.fixture
def edition_id(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> int:
    edition = edition_with_readers(session, daily_list, READERS, now=now, settings=settings)
    return edition.id


def send_all(
    session: Session, edition_id: int, transport: MemoryTransport, settings: Settings
) -> None:
    for batch in pending_batches(session, edition_id, settings.batch_size):
        run_batch(session, batch, transport, settings, clock=clock)


def test_start_sending_creates_one_delivery_per_confirmed_reader(
    session: Session, edition_id: int, now: datetime
) -> None:
    assert start_sending(session, edition_id, now=now) == len(READERS)
    session.commit()
    assert session.scalar(select(Delivery).limit(1)).status == DeliveryStatus.QUEUED  # type: ignore[union-attr]


def test_start_sending_twice_creates_rows_once(
    session: Session, edition_id: int, now: datetime
) -> None:
    start_sending(session, edition_id, now=now)
    assert start_sending(session, edition_id, now=now) == 0
    session.commit()
    assert len(session.scalars(select(Delivery)).all()) == len(READERS)


def test_pending_readers_are_not_sent_to(session: Session, edition_id: int, now: datetime) -> None:
    pending = session.scalars(select(Subscription)).first()
    assert pending is not None
    pending.status = SubscriptionStatus.PENDING
    session.flush()
    assert start_sending(session, edition_id, now=now) == len(READERS) - 1


def test_batches_are_keyset_ranges_covering_every_row(
    session: Session, edition_id: int, now: datetime
) -> None:
    start_sending(session, edition_id, now=now)
    session.commit()
    batches = pending_batches(session, edition_id, batch_size=3)
    ids = session.scalars(select(Delivery.id).order_by(Delivery.id)).all()
    assert [(b.first_id, b.last_id) for b in batches] == [(ids[0], ids[2]), (ids[3], ids[3])]


def test_every_reader_gets_one_message_and_edition_is_sent(
    session: Session, edition_id: int, now: datetime, settings: Settings
) -> None:
    start_sending(session, edition_id, now=now)
    session.commit()
    transport = MemoryTransport()
    send_all(session, edition_id, transport, settings)
    assert sorted(rcpt for _, rcpt, _ in transport.sent) == READERS
    state = progress(session, edition_id, now=TEST_NOW)
    assert (state.status, state.sent, state.remaining) == (EditionStatus.SENT, len(READERS), 0)


@pytest.fixture
def sent_in_another_script(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> bytes:
    """A reader's digest of a list named in Japanese, from an Arabic name, with an emoji
    subject, as the transport got it."""
    daily_list.name, daily_list.from_name = TEXTS["cjk"][:40], TEXTS["arabic"][:60]
    edition = edition_with_readers(session, daily_list, READERS, now=now, settings=settings)
    edit(session, edition, Touches(subject=TEXTS["emoji"]), settings)
    start_sending(session, edition.id, now=now)
    session.commit()
    transport = MemoryTransport()
    send_all(session, edition.id, transport, settings)
    return transport.sent[0][2]


def test_a_digest_in_another_script_reaches_readers_with_its_subject_whole(
    sent_in_another_script: bytes,
) -> None:
    message = message_from_bytes(sent_in_another_script, policy=policy.default)
    assert message["Subject"] == TEXTS["emoji"]


def test_a_digest_in_another_script_reaches_readers_with_its_sender_whole(
    sent_in_another_script: bytes,
) -> None:
    sender = str(make_header(decode_header(raw_value(sent_in_another_script, "From"))))
    assert sender == f"{TEXTS['arabic'][:60].strip()} <digest@shortlysts.example.com>"


def test_a_digest_in_another_script_has_short_encoded_words_on_folded_lines(
    sent_in_another_script: bytes,
) -> None:
    assert_well_folded(sent_in_another_script)


def test_running_a_batch_twice_sends_nothing_twice(
    session: Session, edition_id: int, now: datetime, settings: Settings
) -> None:
    start_sending(session, edition_id, now=now)
    session.commit()
    transport = MemoryTransport()
    batch = pending_batches(session, edition_id, settings.batch_size)[0]
    run_batch(session, batch, transport, settings, clock=clock)
    run_batch(session, batch, transport, settings, clock=clock)
    assert len(transport.sent) == len(READERS)


def test_reader_who_left_after_the_send_began_is_skipped(
    session: Session, edition_id: int, now: datetime, settings: Settings
) -> None:
    start_sending(session, edition_id, now=now)
    leaver = session.scalars(select(Subscription)).first()
    assert leaver is not None
    leaver.status = SubscriptionStatus.UNSUBSCRIBED
    session.commit()
    transport = MemoryTransport()
    send_all(session, edition_id, transport, settings)
    assert leaver.subscriber.email not in [rcpt for _, rcpt, _ in transport.sent]
    assert progress(session, edition_id, now=TEST_NOW).skipped == 1


def test_permanent_failure_is_recorded_and_not_retried(
    session: Session, edition_id: int, now: datetime, settings: Settings
) -> None:
    start_sending(session, edition_id, now=now)
    session.commit()
    transport = FlakyTransport({"bob@example.com": PermanentFailure("550 5.1.1 no such user", 550)})
    send_all(session, edition_id, transport, settings)
    failed = session.scalars(select(Delivery).where(Delivery.status == DeliveryStatus.FAILED)).one()
    assert failed.last_error == "550 5.1.1 no such user"
    assert pending_batches(session, edition_id, settings.batch_size) == []


def test_temporary_failure_is_queued_again_then_delivered(
    session: Session, edition_id: int, now: datetime, settings: Settings
) -> None:
    start_sending(session, edition_id, now=now)
    session.commit()
    transport = FlakyTransport({"bob@example.com": TemporaryFailure("451 try later", 451)})
    batch = pending_batches(session, edition_id, settings.batch_size)[0]
    result = run_batch(session, batch, transport, settings, clock=clock)
    assert result.needs_retry
    assert progress(session, edition_id, now=TEST_NOW).queued == 1
    run_batch(session, batch, transport, settings, clock=clock)
    assert sorted(rcpt for _, rcpt, _ in transport.sent) == READERS


def test_lost_connection_requeues_only_the_unsent_rest(
    session: Session, edition_id: int, now: datetime, settings: Settings
) -> None:
    start_sending(session, edition_id, now=now)
    session.commit()
    transport = FlakyTransport({"cat@example.com": ConnectionLost("connection reset")})
    batch = pending_batches(session, edition_id, settings.batch_size)[0]
    run_batch(session, batch, transport, settings, clock=clock)
    assert progress(session, edition_id, now=TEST_NOW).queued == 2
    run_batch(session, batch, transport, settings, clock=clock)
    assert sorted(rcpt for _, rcpt, _ in transport.sent) == READERS


def test_rate_limited_rest_waits_without_using_attempts(
    session: Session, edition_id: int, now: datetime, settings: Settings
) -> None:
    start_sending(session, edition_id, now=now)
    session.commit()
    transport = FlakyTransport({"bob@example.com": Throttled("rate limited for 600 s", 600)})
    batch = pending_batches(session, edition_id, settings.batch_size)[0]
    result = run_batch(session, batch, transport, settings, clock=clock)
    assert (result.sent, result.retry_after) == (1, 600)
    waiting = session.scalars(
        select(Delivery).where(Delivery.status == DeliveryStatus.QUEUED)
    ).all()
    assert len(waiting) == 3
    assert {d.attempts for d in waiting} == {0}


def test_attempts_are_capped(
    session: Session, edition_id: int, now: datetime, settings: Settings
) -> None:
    start_sending(session, edition_id, now=now)
    session.commit()
    batch = pending_batches(session, edition_id, settings.batch_size)[0]
    for _ in range(settings.max_delivery_attempts):
        transport = FlakyTransport({"ann@example.com": TemporaryFailure("452 mailbox full", 452)})
        run_batch(session, batch, transport, settings, clock=clock)
    state = progress(session, edition_id, now=TEST_NOW)
    assert (state.failed, state.remaining, state.status) == (1, 0, EditionStatus.SENT)


def test_a_skipped_edition_cannot_be_sent(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    edition = edition_with_readers(
        session, daily_list, READERS, now=now, settings=settings, posts=0
    )
    assert edition.status == EditionStatus.SKIPPED
    with pytest.raises(TransitionError, match="skipped"):
        start_sending(session, edition.id, now=now)


def test_batch_of_an_unknown_edition_does_nothing(session: Session, settings: Settings) -> None:
    result = run_batch(session, BatchRange(999, 1, 10), MemoryTransport(), settings, clock=clock)
    assert result.sent == 0


def test_an_edition_without_readers_is_finished_at_once(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    edition = edition_with_readers(session, daily_list, [], now=now, settings=settings)
    assert start_sending(session, edition.id, now=now) == 0
    state = progress(session, edition.id, now=TEST_NOW)
    assert (state.status, state.total) == (EditionStatus.SENT, 0)


def test_rows_are_created_in_chunks_covering_every_reader_once(
    session: Session, edition_id: int, now: datetime
) -> None:
    assert start_sending(session, edition_id, now=now, chunk=3) == len(READERS)
    session.commit()
    subscribers = session.scalars(select(Delivery.subscriber_id)).all()
    assert len(subscribers) == len(set(subscribers)) == len(READERS)


@pytest.mark.skipif(
    not os.environ.get("NEWSLETTER_TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="row locks: PostgreSQL only (SQLite locks the whole database)",
)
def test_rows_locked_by_a_stalled_transaction_are_passed_over_not_waited_for(
    session: Session, edition_id: int, now: datetime, settings: Settings
) -> None:
    start_sending(session, edition_id, now=now)
    session.commit()
    first = session.scalars(
        select(Delivery.id).where(Delivery.edition_id == edition_id).order_by(Delivery.id)
    ).first()
    stalled = session.get_bind().engine.connect()  # a worker cut off mid-claim
    try:
        stalled.execute(select(Delivery.id).where(Delivery.id == first).with_for_update())
        transport = MemoryTransport()
        send_all(session, edition_id, transport, settings)
        assert len(transport.sent) == len(READERS) - 1
    finally:
        stalled.rollback()
        stalled.close()
    send_all(session, edition_id, transport, settings)
    assert len(transport.sent) == len(READERS)
