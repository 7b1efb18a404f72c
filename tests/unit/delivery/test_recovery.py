"""A batch whose worker dies mid-send: nobody is mailed twice, nobody is forgotten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.fanout import BatchRange, pending_batches
from newsletter.delivery.progress import progress
from newsletter.delivery.transports import MemoryTransport
from newsletter.editions.lifecycle import start_sending
from newsletter.editions.sending import reconcile, retry_uncertain, run_batch
from newsletter.models import EditionStatus, NewsletterList
from tests.factories import edition_with_readers
from tests.moments import TEST_NOW

READERS = [f"reader{i}@example.com" for i in range(6)]


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing in the worker gets to handle it."""


class DiesOnThirdMessage(MemoryTransport):
    def send(self, sender: str, recipient: str, message: bytes) -> None:
        if len(self.sent) == 2:
            raise WorkerKilled
        super().send(sender, recipient, message)


def clock() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Claims of two messages: groups (0, 1), (2, 3), (4, 5)."""
    return settings.model_copy(update={"delivery_flush_size": 2})


@pytest.fixture
def crashed(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> tuple[int, MemoryTransport]:
    """An edition whose only batch died while handing over its third message: the first of
    its second group."""
    edition = edition_with_readers(session, daily_list, READERS, now=now, settings=settings)
    start_sending(session, edition.id, now=now)
    session.commit()
    transport = DiesOnThirdMessage()
    batch = pending_batches(session, edition.id, settings.batch_size)[0]
    with pytest.raises(WorkerKilled):
        run_batch(session, batch, transport, settings, clock=clock)
    session.rollback()
    return edition.id, transport


def later() -> datetime:
    return clock() + timedelta(minutes=30)


def test_a_live_batch_is_left_alone(session: Session, crashed: tuple[int, MemoryTransport]) -> None:
    result = reconcile(session, now=clock(), stale_after=timedelta(minutes=20))
    assert (result.uncertain, result.editions) == (0, [])


def test_only_the_messages_in_flight_are_uncertain_and_the_rest_queued_again(
    session: Session, crashed: tuple[int, MemoryTransport], in_flight: int
) -> None:
    edition_id, _ = crashed
    result = reconcile(session, now=later(), stale_after=timedelta(minutes=20))
    session.commit()
    state = progress(session, edition_id, now=TEST_NOW)
    assert (result.uncertain, result.untried) == (in_flight, 4 - in_flight)
    assert (state.sent, state.uncertain, state.queued, state.sending) == (
        2, in_flight, 4 - in_flight, 0,
    )  # fmt: skip


def test_the_range_a_dead_worker_left_is_enqueued_once(
    session: Session, crashed: tuple[int, MemoryTransport], settings: Settings
) -> None:
    edition_id, _ = crashed
    stale = timedelta(minutes=20)
    first = reconcile(session, now=later(), stale_after=stale)
    session.commit()
    again = reconcile(session, now=later() + timedelta(minutes=5), stale_after=stale)
    left = pending_batches(session, edition_id, settings.batch_size)
    assert first.stranded == [BatchRange(edition_id, left[0].first_id, left[-1].last_id)]
    assert (first.editions, again.stranded, again.editions) == ([], [], [])


def test_resuming_mails_everyone_else_exactly_once(
    session: Session, crashed: tuple[int, MemoryTransport], settings: Settings, in_flight: int
) -> None:
    edition_id, first_run = crashed
    reconcile(session, now=later(), stale_after=timedelta(minutes=20))
    session.commit()
    second_run = MemoryTransport()
    for batch in pending_batches(session, edition_id, settings.batch_size):
        run_batch(session, batch, second_run, settings, clock=clock)
    received = [rcpt for _, rcpt, _ in first_run.sent + second_run.sent]
    assert received == READERS[:2] + READERS[2 + in_flight :]
    state = progress(session, edition_id, now=TEST_NOW)
    assert (state.status, state.sent, state.uncertain) == (
        EditionStatus.SENT, 6 - in_flight, in_flight,
    )  # fmt: skip


def test_operator_can_retry_the_uncertain_ones(
    session: Session, crashed: tuple[int, MemoryTransport], settings: Settings, in_flight: int
) -> None:
    edition_id, _ = crashed
    reconcile(session, now=later(), stale_after=timedelta(minutes=20))
    session.commit()
    for batch in pending_batches(session, edition_id, settings.batch_size):
        run_batch(session, batch, MemoryTransport(), settings, clock=clock)
    retried = retry_uncertain(session, edition_id, now=later(), settings=settings)
    assert (retried.queued, retried.waiting) == (in_flight, 0)
    session.commit()
    retry = MemoryTransport()
    for batch in pending_batches(session, edition_id, settings.batch_size):
        run_batch(session, batch, retry, settings, clock=clock)
    assert [rcpt for _, rcpt, _ in retry.sent] == READERS[2 : 2 + in_flight]
    state = progress(session, edition_id, now=TEST_NOW)
    assert (state.status, state.sent, state.maybe_duplicate) == (EditionStatus.SENT, 6, in_flight)


def test_an_idle_send_with_lost_tasks_is_resumed(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    edition = edition_with_readers(session, daily_list, READERS, now=now, settings=settings)
    start_sending(session, edition.id, now=now)  # its batch tasks never ran (Redis lost them)
    session.commit()
    result = reconcile(session, now=now + timedelta(hours=1), stale_after=timedelta(minutes=20))
    assert result.editions == [edition.id]


def test_an_idle_send_is_resumed_once_per_stale_period_not_at_every_run(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    edition = edition_with_readers(session, daily_list, READERS, now=now, settings=settings)
    start_sending(session, edition.id, now=now)  # its batch tasks never ran
    session.commit()
    stale = timedelta(minutes=20)
    later = now + timedelta(hours=1)

    runs = [
        reconcile(session, now=later + timedelta(minutes=minutes), stale_after=stale).editions
        for minutes in (0, 5, 10, 15, 21)
    ]

    assert runs == [[edition.id], [], [], [], [edition.id]]


@pytest.fixture
def grouped(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> tuple[int, Settings]:
    """An edition being sent with ``delivery_receipts = "group"``."""
    grouped = settings.model_copy(update={"delivery_receipts": "group"})
    edition = edition_with_readers(session, daily_list, READERS, now=now, settings=grouped)
    start_sending(session, edition.id, now=now)
    session.commit()
    return edition.id, grouped


def test_with_group_receipts_a_dead_workers_whole_group_is_uncertain(
    session: Session, grouped: tuple[int, Settings]
) -> None:
    edition_id, settings = grouped
    batch = pending_batches(session, edition_id, settings.batch_size)[0]
    with pytest.raises(WorkerKilled):
        run_batch(session, batch, DiesOnThirdMessage(), settings, clock=clock)
    session.rollback()
    reconcile(session, now=later(), stale_after=timedelta(minutes=20))
    session.commit()
    state = progress(session, edition_id, now=TEST_NOW)
    assert (state.sent, state.uncertain, state.queued) == (2, 2, 2)


def test_group_receipts_record_every_send(session: Session, grouped: tuple[int, Settings]) -> None:
    edition_id, settings = grouped
    transport = MemoryTransport()
    for batch in pending_batches(session, edition_id, settings.batch_size):
        run_batch(session, batch, transport, settings, clock=clock)
    state = progress(session, edition_id, now=TEST_NOW)
    assert (state.status, state.sent, len(transport.sent)) == (EditionStatus.SENT, 6, 6)
