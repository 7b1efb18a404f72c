"""Progress marks in Redis: sent outcomes written per group, yet a stopped worker leaves at
most two messages uncertain, and everything it sent before them recorded as sent.

Real Redis (the suite's), real database; the transport is the in-memory one, which stands for
the SMTP server's acceptance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery import marks as marks_module
from newsletter.delivery.fanout import pending_batches
from newsletter.delivery.lease import marked
from newsletter.delivery.marks import PREFIX, MarksUnavailable, ProgressMarks, RedisMarks
from newsletter.delivery.progress import progress
from newsletter.delivery.recovery import NO_MARK
from newsletter.delivery.transports import MemoryTransport
from newsletter.editions.lifecycle import start_sending
from newsletter.editions.sending import reconcile, run_batch
from newsletter.models import Delivery, EditionStatus, NewsletterList
from tests.factories import edition_with_readers
from tests.moments import TEST_NOW

READERS = [f"reader{i}@example.com" for i in range(6)]
STALE = timedelta(minutes=20)


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing in the worker gets to handle it."""


class Dies(MemoryTransport):
    """Accepts ``accepted`` messages (by default all of them), then the worker dies handing
    over the next. ``after[n]`` runs once the n-th message (from 1) was accepted; with
    ``watch``, ``tokens`` keeps the claims it returns after each message."""

    def __init__(
        self, accepted: int = len(READERS) + 1, *,
        after: dict[int, Callable[[], None]] | None = None,
        watch: Callable[[], set[str]] | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.accepted = accepted
        self.after = after or {}
        self.watch = watch
        self.tokens: list[str] = []

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        if len(self.sent) == self.accepted:
            raise WorkerKilled
        super().send(sender, recipient, message)
        if self.watch is not None:
            self.tokens.extend(self.watch())
        action = self.after.get(len(self.sent))
        if action is not None:
            action()


def clock() -> datetime:
    return datetime.now(UTC)


def later() -> datetime:
    return clock() + timedelta(minutes=30)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.client_unpause()  # a test that paused Redis leaves it answering for the next
    client.close()


@pytest.fixture
def marks(redis_url: str) -> Iterator[ProgressMarks]:
    found = marks_module.marks_for(redis_url)
    assert found is not None
    yield found
    found.close()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Receipts by progress marks, in one group of six: every sent outcome of the group is
    written to the database only when the group ends."""
    return settings.model_copy(update={"delivery_flush_size": 6, "delivery_receipts": "marks"})


def run(
    session: Session, edition_id: int, transport: MemoryTransport, settings: Settings,
    marks: ProgressMarks | None,
) -> None:  # fmt: skip
    for batch in pending_batches(session, edition_id, settings.batch_size):
        run_batch(session, batch, transport, settings, clock=clock, marks=marks)


def killed_after(
    session: Session, edition_id: int, settings: Settings, marks: ProgressMarks, accepted: int,
) -> MemoryTransport:  # fmt: skip
    transport = Dies(accepted)
    with pytest.raises(WorkerKilled):
        run(session, edition_id, transport, settings, marks)
    session.rollback()
    return transport


def statuses(session: Session, edition_id: int) -> list[str]:
    session.expire_all()
    return [
        str(status)
        for status in session.scalars(
            select(Delivery.status).where(Delivery.edition_id == edition_id).order_by(Delivery.id)
        )
    ]


def claims(session: Session, edition_id: int) -> set[str]:
    session.expire_all()
    rows = session.scalars(select(Delivery.claim).where(Delivery.edition_id == edition_id))
    return {claim for claim in rows if claim}


def test_a_clean_run_writes_every_outcome_and_leaves_no_mark(
    session: Session, edition_id: int, settings: Settings, marks: ProgressMarks,
    client: redis.Redis,
) -> None:  # fmt: skip
    transport = Dies(watch=lambda: claims(session, edition_id))
    run(session, edition_id, transport, settings, marks)
    claim = transport.tokens[0]
    assert marked(claim)
    assert statuses(session, edition_id) == ["sent"] * 6
    assert client.exists(PREFIX + claim) == 0
    assert progress(session, edition_id, now=TEST_NOW).status == EditionStatus.SENT


def test_a_killed_worker_mid_group_leaves_its_accepted_messages_sent_not_uncertain(
    session: Session, edition_id: int, settings: Settings, marks: ProgressMarks
) -> None:
    first = killed_after(session, edition_id, settings, marks, accepted=4)
    assert statuses(session, edition_id) == ["sending"] * 6, "nothing written before the group ends"

    result = reconcile(session, now=later(), stale_after=STALE, marks=marks)
    session.commit()
    # The four accepted are sent by the mark; the one in flight (and the next, which the mark
    # cannot tell apart from it) are uncertain; nothing was sent twice.
    assert (result.recorded, result.uncertain, result.untried) == (4, 2, 0)
    assert statuses(session, edition_id) == ["sent"] * 4 + ["uncertain"] * 2
    assert [rcpt for _, rcpt, _ in first.sent] == READERS[:4]


def test_resuming_after_a_killed_worker_mails_everyone_else_exactly_once(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings,
    marks: ProgressMarks,
) -> None:  # fmt: skip
    readers = [f"reader{i}@example.com" for i in range(10)]
    edition = edition_with_readers(session, daily_list, readers, now=now, settings=settings)
    start_sending(session, edition.id, now=now)
    session.commit()
    first = killed_after(session, edition.id, settings, marks, accepted=7)  # in the 2nd group
    reconcile(session, now=later(), stale_after=STALE, marks=marks)
    session.commit()
    second = MemoryTransport()
    run(session, edition.id, second, settings, marks)
    received = [rcpt for _, rcpt, _ in first.sent + second.sent]
    assert received == readers[:7] + readers[9:]
    state = progress(session, edition.id, now=TEST_NOW)
    assert (state.status, state.sent, state.uncertain) == (EditionStatus.SENT, 8, 2)


def test_a_worker_killed_before_its_first_message_leaves_it_uncertain_and_the_rest_queued(
    session: Session, edition_id: int, settings: Settings, marks: ProgressMarks
) -> None:
    killed_after(session, edition_id, settings, marks, accepted=0)
    result = reconcile(session, now=later(), stale_after=STALE, marks=marks)
    session.commit()
    assert (result.recorded, result.uncertain, result.untried) == (0, 2, 4)
    assert statuses(session, edition_id) == ["uncertain"] * 2 + ["queued"] * 4


def test_a_lost_mark_leaves_the_whole_group_uncertain(
    session: Session, edition_id: int, settings: Settings, marks: ProgressMarks,
    client: redis.Redis,
) -> None:  # fmt: skip
    killed_after(session, edition_id, settings, marks, accepted=3)
    for claim in claims(session, edition_id):
        client.delete(PREFIX + claim)  # Redis restarted without its data
    result = reconcile(session, now=later(), stale_after=STALE, marks=marks)
    session.commit()
    assert (result.recorded, result.uncertain) == (0, 6)
    rows = session.scalars(select(Delivery).where(Delivery.edition_id == edition_id)).all()
    assert {(str(row.status), row.last_error) for row in rows} == {("uncertain", NO_MARK)}


class Unreachable(ProgressMarks):
    def read(self, claims: object) -> dict[str, int | None]:
        raise MarksUnavailable("Connection refused")


def test_a_reconcile_that_cannot_read_the_marks_leaves_the_claim_for_the_next(
    session: Session, edition_id: int, settings: Settings, marks: ProgressMarks,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    killed_after(session, edition_id, settings, marks, accepted=3)
    with caplog.at_level(logging.WARNING):
        blind = reconcile(session, now=later(), stale_after=STALE, marks=Unreachable())
    session.commit()
    assert (blind.recorded, blind.uncertain, blind.untried) == (0, 0, 0)
    assert statuses(session, edition_id) == ["sending"] * 6
    assert "left for the next reconcile: Connection refused" in caplog.text

    result = reconcile(session, now=later(), stale_after=STALE, marks=marks)
    session.commit()
    assert (result.recorded, result.uncertain) == (3, 2)


def test_a_worker_that_loses_redis_mid_group_sends_on_recording_each_message(
    session: Session, edition_id: int, settings: Settings, redis_url: str, client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    impatient = RedisMarks(redis.Redis.from_url(redis_url, socket_timeout=0.2))
    # Groups of three; Redis stops answering writes for a while after the second message (a
    # real pause).
    settings = settings.model_copy(update={"delivery_flush_size": 3})
    transport = Dies(
        after={2: lambda: client.client_pause(600, all=False)},
        watch=lambda: claims(session, edition_id),
    )
    with caplog.at_level(logging.WARNING):
        run(session, edition_id, transport, settings, impatient)
    impatient.close()
    assert statuses(session, edition_id) == ["sent"] * 6
    assert "records each message in the database" in caplog.text
    # The first group under its marked claim; the next under one that says each outcome is
    # in the database.
    assert [token[:3] for token in dict.fromkeys(transport.tokens)] == ["m2-", "r1-"]


def test_after_losing_redis_a_killed_worker_costs_no_more_than_the_message_in_flight(
    session: Session, edition_id: int, settings: Settings, redis_url: str, client: redis.Redis,
    marks: ProgressMarks,
) -> None:  # fmt: skip
    impatient = RedisMarks(redis.Redis.from_url(redis_url, socket_timeout=0.2))
    # Redis paused after the first message: the mark stays behind from there on.
    transport = Dies(4, after={1: lambda: client.client_pause(600, all=False)})
    with pytest.raises(WorkerKilled):
        run(session, edition_id, transport, settings, impatient)
    session.rollback()
    impatient.close()
    # Messages 2-4 were accepted with the mark stuck: each was recorded in the database
    # instead, so the stale mark costs nothing.
    result = reconcile(session, now=later(), stale_after=STALE, marks=marks)
    session.commit()
    assert statuses(session, edition_id) == ["sent"] * 4 + ["uncertain"] * 2
    assert result.uncertain == 2


def test_a_mark_taken_by_another_redis_process_is_not_trusted(
    session: Session, edition_id: int, settings: Settings, marks: ProgressMarks,
    client: redis.Redis, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    killed_after(session, edition_id, settings, marks, accepted=1)
    for claim in claims(session, edition_id):
        # A Redis restored from an older snapshot, or a replica promoted after a failover:
        # its mark may be behind what was sent.
        client.set(PREFIX + claim, b"0123456789abcdef0123456789abcdef01234567:5")
    with caplog.at_level(logging.WARNING):
        result = reconcile(session, now=later(), stale_after=STALE, marks=marks)
    session.commit()
    assert (result.recorded, result.uncertain) == (0, 6)
    assert "taken by another Redis process" in caplog.text


def test_a_reconcile_without_redis_leaves_marked_claims_alone(
    session: Session, edition_id: int, settings: Settings, marks: ProgressMarks,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    killed_after(session, edition_id, settings, marks, accepted=3)
    with caplog.at_level(logging.ERROR):
        result = reconcile(session, now=later(), stale_after=STALE, marks=None)
    session.commit()
    assert (result.recorded, result.uncertain, result.untried) == (0, 0, 0)
    assert statuses(session, edition_id) == ["sending"] * 6
    assert "NEWSLETTER_REDIS_URL" in caplog.text


def test_without_a_reachable_redis_a_run_claims_as_one_recording_each_message(
    session: Session, edition_id: int, settings: Settings,
) -> None:  # fmt: skip
    transport = Dies(watch=lambda: claims(session, edition_id))
    nowhere = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    run(session, edition_id, transport, settings, RedisMarks(nowhere))
    assert [token[:3] for token in set(transport.tokens)] == ["r1-"]
    assert statuses(session, edition_id) == ["sent"] * 6
