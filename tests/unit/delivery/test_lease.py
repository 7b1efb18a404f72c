"""Fencing and leases: a worker that lost its claim can neither send nor record.

The worker's monotonic clock and the install's clock are both driven by the tests, so "a
worker frozen for three minutes" is a transport that moves them while a message is out.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.clock import FrozenClock
from newsletter.config import Settings
from newsletter.delivery import lease
from newsletter.delivery.fanout import pending_batches
from newsletter.delivery.progress import progress
from newsletter.delivery.transports import MemoryTransport
from newsletter.editions.sending import reconcile, retry_uncertain, run_batch
from newsletter.models import Delivery, DeliveryStatus, EditionStatus

READERS = [f"reader{i}@example.com" for i in range(6)]
STALE = timedelta(minutes=20)


class WorkerTime:
    """The worker's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.at = 1000.0

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def worker_time(monkeypatch: pytest.MonkeyPatch) -> WorkerTime:
    fake = WorkerTime()
    monkeypatch.setattr(lease, "monotonic", fake)
    return fake


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Groups of three; a 120 s lease, renewed past 60 s, given up with 30 s (an SMTP
    timeout) left."""
    return settings.model_copy(
        update={"delivery_flush_size": 3, "delivery_lease_seconds": 120, "smtp_timeout": 30}
    )


class Pausing(MemoryTransport):
    """Sends, then runs ``after[n]`` once the n-th message (from 1) has left."""

    def __init__(self, after: dict[int, Callable[[], None]]) -> None:
        super().__init__()
        self.after = after

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        super().send(sender, recipient, message)
        action = self.after.get(len(self.sent))
        if action is not None:
            action()


def send_all(
    session: Session, edition_id: int, transport: MemoryTransport, settings: Settings,
    clock: FrozenClock,
) -> None:  # fmt: skip
    for batch in pending_batches(session, edition_id, settings.batch_size):
        run_batch(session, batch, transport, settings, clock=clock)


def statuses(session: Session, edition_id: int) -> list[str]:
    session.expire_all()
    return [
        str(status)
        for status in session.scalars(
            select(Delivery.status).where(Delivery.edition_id == edition_id).order_by(Delivery.id)
        )
    ]


@dataclass
class Frozen:
    transport: MemoryTransport
    revoked: int  # rows the reconciler marked uncertain during the freeze
    log: str


@pytest.fixture
def frozen_after_first(
    session: Session, edition_id: int, settings: Settings, clock: FrozenClock,
    worker_time: WorkerTime, caplog: pytest.LogCaptureFixture,
) -> Frozen:  # fmt: skip
    """The worker freezes for 130 s just after its first message left; meanwhile the
    reconciler revokes its expired claim."""
    revoked: list[int] = []

    def freeze() -> None:
        worker_time.at += 130
        clock.advance(timedelta(seconds=130))
        revoked.append(reconcile(session, now=clock(), stale_after=STALE).uncertain)
        session.commit()

    transport = Pausing({1: freeze})
    batch = pending_batches(session, edition_id, settings.batch_size)[0]
    with caplog.at_level(logging.WARNING):
        result = run_batch(session, batch, transport, settings, clock=clock)
    assert (result.sent, result.lease_lost, result.more, result.fenced) == (1, True, True, 1)
    return Frozen(transport, revoked[0], caplog.text)


def test_a_worker_frozen_past_its_lease_wakes_up_and_sends_nothing_more(
    session: Session, edition_id: int, frozen_after_first: Frozen, in_flight: int
) -> None:
    assert [rcpt for _, rcpt, _ in frozen_after_first.transport.sent] == [READERS[0]]
    # Only its rows in flight are uncertain: the rows after them were never tried, and go
    # back to the queue with the rest of the range. The woken worker's receipt was fenced.
    assert frozen_after_first.revoked == in_flight
    assert statuses(session, edition_id) == ["uncertain"] * in_flight + ["queued"] * (6 - in_flight)
    assert "was not recorded (its message was sent)" in frozen_after_first.log


def test_retry_waits_until_the_revoked_attempt_can_no_longer_complete(
    session: Session, edition_id: int, frozen_after_first: Frozen, settings: Settings,
    clock: FrozenClock, in_flight: int,
) -> None:  # fmt: skip
    first = frozen_after_first.transport
    # The lease ended 10 s ago: a message in flight may still land within an SMTP timeout.
    early = retry_uncertain(session, edition_id, now=clock(), settings=settings)
    assert (early.queued, early.waiting) == (0, in_flight)
    assert early.ready_at == clock() + timedelta(seconds=20)
    clock.advance(timedelta(seconds=21))
    retried = retry_uncertain(session, edition_id, now=clock(), settings=settings)
    session.commit()
    assert (retried.queued, retried.waiting) == (in_flight, 0)

    second = MemoryTransport()
    send_all(session, edition_id, second, settings, clock)
    received = [rcpt for _, rcpt, _ in first.sent + second.sent]
    assert sorted(received) == sorted([*READERS, READERS[0]])
    state = progress(session, edition_id, now=clock())
    assert (state.status, state.sent, state.maybe_duplicate, state.uncertain) == (
        EditionStatus.SENT, 6, in_flight, 0,
    )  # fmt: skip


def test_the_reconciler_leaves_a_live_lease_alone_however_old_its_rows(
    session: Session, edition_id: int, settings: Settings, clock: FrozenClock,
    worker_time: WorkerTime,
) -> None:  # fmt: skip
    revoked: list[int] = []

    def slow_but_alive() -> None:
        # 100 s later, past stale_after but inside the lease.
        revoked.append(reconcile(session, now=clock() + timedelta(seconds=100),
                                 stale_after=timedelta(0)).uncertain)  # fmt: skip
        session.commit()

    transport = Pausing({1: slow_but_alive})
    send_all(session, edition_id, transport, settings, clock)
    assert revoked == [0]
    assert statuses(session, edition_id) == ["sent"] * 6


def test_a_slow_worker_renews_its_lease_and_keeps_its_claim(
    session: Session, edition_id: int, settings: Settings, clock: FrozenClock,
    worker_time: WorkerTime,
) -> None:  # fmt: skip
    revoked: list[int] = []

    def slow() -> None:  # each message takes 35 s: a renewal is due before the third
        worker_time.at += 35
        clock.advance(timedelta(seconds=35))

    def past_the_first_lease() -> None:
        slow()
        clock.advance(timedelta(seconds=60))  # 165 s after the claim: its first lease is over
        revoked.append(reconcile(session, now=clock(), stale_after=STALE).uncertain)
        session.commit()
        clock.advance(timedelta(seconds=-60))

    transport = Pausing({1: slow, 2: slow, 3: past_the_first_lease})
    batch = pending_batches(session, edition_id, settings.batch_size)[0]
    result = run_batch(session, batch, transport, settings, clock=clock)
    assert revoked == [0], "the lease renewed at 70 s, until 190 s, still held"
    assert (result.sent, result.lease_lost, result.fenced) == (6, False, 0)
    assert statuses(session, edition_id) == ["sent"] * 6


def test_a_worker_whose_claim_was_revoked_stops_at_its_next_receipt(
    session: Session, edition_id: int, settings: Settings, clock: FrozenClock,
    worker_time: WorkerTime, in_flight: int,
) -> None:  # fmt: skip
    def revoked_behind_its_back() -> None:
        # 70 s on: renewal due, 20 s of margin left. Meanwhile, an operator's clock far
        # ahead revoked the claim.
        worker_time.at += 70
        reconcile(session, now=clock() + timedelta(hours=1), stale_after=STALE)
        session.commit()

    transport = Pausing({1: revoked_behind_its_back})
    batch = pending_batches(session, edition_id, settings.batch_size)[0]
    result = run_batch(session, batch, transport, settings, clock=clock)
    assert len(transport.sent) == 1
    assert (result.lease_lost, result.fenced) == (True, 1)
    assert statuses(session, edition_id) == ["uncertain"] * in_flight + ["queued"] * (6 - in_flight)


def test_a_lapsed_lease_not_yet_revoked_puts_the_rest_of_its_group_back(
    session: Session, edition_id: int, settings: Settings, clock: FrozenClock,
    worker_time: WorkerTime,
) -> None:  # fmt: skip
    def stalled() -> None:  # 95 s: less than an SMTP timeout of lease left, nobody revoked it
        worker_time.at += 95

    transport = Pausing({1: stalled})
    batch = pending_batches(session, edition_id, settings.batch_size)[0]
    result = run_batch(session, batch, transport, settings, clock=clock)
    assert (result.sent, result.more, result.fenced) == (1, True, 0)
    assert statuses(session, edition_id) == ["sent"] + ["queued"] * 5
    rows = session.scalars(select(Delivery).where(Delivery.edition_id == edition_id)).all()
    assert all(row.lease_until is None and row.claim is None for row in rows)
    send_all(session, edition_id, MemoryTransport(), settings, clock)
    assert statuses(session, edition_id) == ["sent"] * 6


def test_the_lease_must_outlast_two_smtp_timeouts(settings: Settings) -> None:
    with pytest.raises(ValueError, match="DELIVERY_LEASE_SECONDS"):
        Settings.model_validate(
            {**settings.model_dump(), "delivery_lease_seconds": 60, "smtp_timeout": 30}
        )


def test_every_claimed_row_carries_its_claim_and_lease(
    session: Session, edition_id: int, settings: Settings, clock: FrozenClock,
) -> None:  # fmt: skip
    seen: list[tuple[str | None, datetime | None]] = []

    def look() -> None:
        seen.extend(session.execute(
            select(Delivery.claim, Delivery.lease_until)
            .where(Delivery.status == DeliveryStatus.SENDING)
        ).all())  # fmt: skip

    send_all(session, edition_id, Pausing({1: look}), settings, clock)
    assert len(seen) == 3
    assert len({claim for claim, _ in seen}) == 1
    assert seen[0][0]
    assert {until for _, until in seen} == {clock() + timedelta(seconds=120)}


def reserved_by_a_stopped_run(session: Session, edition_id: int, settings: Settings,
                              clock: FrozenClock) -> lease.Lease:  # fmt: skip
    """A run that reserved the range and stopped before its first group (frozen, cut off)."""
    batch = pending_batches(session, edition_id, settings.batch_size)[0]
    stopped = lease.Lease.start(settings, batch)
    assert stopped.reserve(session, clock()) == len(READERS)
    session.commit()
    return stopped


def test_a_range_held_by_a_live_lease_is_left_to_its_run(
    session: Session, edition_id: int, settings: Settings, clock: FrozenClock,
    worker_time: WorkerTime,
) -> None:  # fmt: skip
    reserved_by_a_stopped_run(session, edition_id, settings, clock)
    clock.advance(timedelta(seconds=60))
    other = MemoryTransport()
    send_all(session, edition_id, other, settings, clock)  # the same task, delivered twice
    assert other.sent == []
    assert statuses(session, edition_id) == ["queued"] * 6


def test_once_its_lease_expires_another_run_takes_the_range_over(
    session: Session, edition_id: int, settings: Settings, clock: FrozenClock,
    worker_time: WorkerTime,
) -> None:  # fmt: skip
    reserved_by_a_stopped_run(session, edition_id, settings, clock)
    clock.advance(timedelta(seconds=121))
    other = MemoryTransport()
    batch = pending_batches(session, edition_id, settings.batch_size)[0]
    run_batch(session, batch, other, settings, clock=clock)
    assert [rcpt for _, rcpt, _ in other.sent] == READERS
    assert statuses(session, edition_id) == ["sent"] * 6


def test_a_woken_run_finds_its_range_taken_and_sends_nothing(
    session: Session, edition_id: int, settings: Settings, clock: FrozenClock,
    worker_time: WorkerTime,
) -> None:  # fmt: skip
    stopped = reserved_by_a_stopped_run(session, edition_id, settings, clock)
    clock.advance(timedelta(seconds=121))
    worker_time.at += 121
    result = reconcile(session, now=clock(), stale_after=STALE)
    session.commit()
    batch = pending_batches(session, edition_id, settings.batch_size)[0]
    assert result.stranded == [batch]
    taken = lease.Lease.start(settings, batch)  # the recovery batch, mid-way
    assert taken.reserve(session, clock()) == len(READERS)
    session.commit()
    stopped.refresh(session, clock)  # the stopped run wakes up
    session.commit()
    woken = MemoryTransport()
    run_batch(session, batch, woken, settings, clock=clock)
    assert woken.sent == []


def test_a_reader_erased_mid_group_does_not_strand_the_rest_of_it(
    session: Session, edition_id: int, settings: Settings, clock: FrozenClock,
    worker_time: WorkerTime,
) -> None:  # fmt: skip
    ids = session.scalars(
        select(Delivery.id).where(Delivery.edition_id == edition_id).order_by(Delivery.id)
    ).all()

    def erase_the_second() -> None:  # the reader erased their data: their row is deleted
        session.execute(delete(Delivery).where(Delivery.id == ids[1]))
        session.commit()

    transport = Pausing({1: erase_the_second})
    send_all(session, edition_id, transport, settings, clock)
    send_all(session, edition_id, transport, settings, clock)  # the follow-up task
    received = Counter(rcpt for _, rcpt, _ in transport.sent)
    assert statuses(session, edition_id) == ["sent"] * 5
    assert max(received.values()) == 1
