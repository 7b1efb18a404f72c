"""A batch: claim a group of deliveries, send each over one connection, record the outcomes.

A row is claimed (``sending``, under a fresh claim and its lease) in a commit before its
message leaves, and marked sent only once the server accepted it, so a batch run twice never
mails anyone twice. Failures are split by kind: permanent ones are recorded and never
retried, temporary ones go back to the queue until ``max_delivery_attempts``, an uncertain
one (the connection dropped while the server had the whole message) is set aside for an
operator.

Each outcome is written before the next message is tried, under the claim that sent it
(:mod:`newsletter.delivery.receipts`): a worker stopped mid-group leaves at most its message
in flight unaccounted for, and a claim the reconciler revoked records nothing and stops. The
lease, and how a batch stops sending once it lapses, is :mod:`newsletter.delivery.lease`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.errors import (
    ConnectionLost,
    DeliveryUncertain,
    PermanentFailure,
    TemporaryFailure,
    Throttled,
)
from newsletter.delivery.fanout import BatchRange
from newsletter.delivery.lease import Lease, free
from newsletter.delivery.marks import ProgressMarks
from newsletter.delivery.prepared import PreparedEdition, Recipient, prepare_edition
from newsletter.delivery.receipts import Receipts, receipts_for
from newsletter.delivery.transports import Transport
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Edition,
    EditionStatus,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)


@dataclass
class BatchResult:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retry: int = 0  # temporary failures put back in the queue
    uncertain: int = 0  # the connection dropped while the server had the whole message
    connection_lost: bool = False
    retry_after: float | None = None  # held back by the relay's rate limit for this long
    more: bool = False  # stopped (time budget, lease lapsed) with deliveries left in its range
    lease_lost: bool = False  # its claim's lease lapsed or was revoked: it stopped sending
    fenced: int = 0  # outcomes not recorded because the claim was revoked meanwhile
    errors: list[str] = field(default_factory=list)
    # What the server said to each reader it refused outright (5xx): (subscriber id, reply),
    # for the bounce policy, which reads them like bounces that came back at once.
    refused: list[tuple[int, str]] = field(default_factory=list)

    @property
    def needs_retry(self) -> bool:
        return self.retry > 0


# Refusals that can be about the reader: of the recipient, or of the message once sent. A
# refusal of our envelope sender (MAIL FROM) or of DATA itself is about us, whoever it hit.
READER_STAGES = ("RCPT TO", "end of DATA")
LEFT_BEFORE_TURN = "the reader left the list before their turn"
LEASE_LAPSED = "its batch's lease ran out before its turn; the next claim sends it"


def _claim_next(
    session: Session,
    batch: BatchRange,
    after_id: int,
    lease: Lease,
    settings: Settings,
    clock: Callable[[], datetime],
) -> list[int]:
    """Claim the next group of the range's queued deliveries past ``after_id`` that this run
    reserved or no live lease holds; no ids at the range's end.

    Walking forward means a row this run put back in the queue waits for the task's retry.
    A concurrent run of the same range claims disjoint rows: the UPDATE re-checks the row.
    """
    limit = settings.delivery_flush_size
    while True:
        now = clock()
        takeable = and_(
            Delivery.status == DeliveryStatus.QUEUED, or_(Delivery.claim == lease.claim, free(now))
        )
        candidates = session.scalars(
            select(Delivery.id)
            .where(
                Delivery.edition_id == batch.edition_id,
                Delivery.id.between(max(batch.first_id, after_id + 1), batch.last_id),
                takeable,
            )
            .order_by(Delivery.id)
            .limit(limit)
            # Rows another transaction holds (a worker cut off mid-claim) are passed over,
            # not waited for.
            .with_for_update(skip_locked=True)
        ).all()
        if not candidates:
            return []
        claimed = session.scalars(
            update(Delivery)
            .where(Delivery.id.in_(candidates), takeable)
            .values(
                status=DeliveryStatus.SENDING,
                claim=lease.claim,
                lease_until=lease.expires_at,
                updated_at=now,
            )
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        ).all()
        if claimed:
            return sorted(claimed)
        after_id = candidates[-1]


def _recipients(
    session: Session, ids: list[int], list_id: int
) -> list[tuple[Recipient, int, bool]]:
    """Each claimed delivery's reader, attempts so far, and whether they still receive it.

    Checked again at sending time: a reader who left since the send began is skipped.
    """
    rows = session.execute(
        select(
            Delivery.id, Delivery.subscriber_id, Delivery.attempts, Subscriber.email,
            Subscription.status, Subscription.paused_at, Subscriber.status, Subscriber.token_key,
        )
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .outerjoin(Subscription, and_(
            Subscription.subscriber_id == Delivery.subscriber_id,
            Subscription.list_id == list_id,
        ))
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.id)
    ).all()  # fmt: skip
    return [
        (
            Recipient(delivery_id, subscriber_id, email, token_key),
            attempts,
            subscription_status == SubscriptionStatus.CONFIRMED
            and paused_at is None
            and subscriber_status == SubscriberStatus.ACTIVE,
        )
        for delivery_id, subscriber_id, attempts, email, subscription_status, paused_at,
        subscriber_status, token_key in rows
    ]  # fmt: skip


def deliver_batch(
    session: Session,
    batch: BatchRange,
    transport: Transport,
    settings: Settings,
    *,
    clock: Callable[[], datetime],
    budget_s: float | None = None,
    marks: ProgressMarks | None = None,
) -> BatchResult:
    """Send one batch, a group of ``delivery_flush_size`` deliveries at a time.

    Each group is claimed in a commit before its first message leaves; each message's
    outcome is written as soon as it is known (:class:`Receipts`). This is the one domain
    function that commits: the ledger must hold every claim before its messages leave, and
    every receipt before the next message. If the process dies mid-group, the row in flight
    and the untried rows after it are left ``sending`` under their claim, for the reconciler.
    With ``marks`` (``delivery_receipts = "marks"``) sent outcomes are written per group and
    a progress mark in Redis stands in for each receipt (:class:`MarkedReceipts`).

    The batch stops early, leaving the rest queued, when the edition stops sending (paused or
    cancelled) or after ``budget_s`` seconds (``result.more`` then asks for another run).
    Whether the edition is complete is the caller's question
    (:func:`newsletter.editions.sending.run_batch` asks it).
    """
    result = BatchResult()
    edition = session.get(Edition, batch.edition_id)
    if edition is None:
        return result
    prepared = prepare_edition(edition, settings, now=clock())
    list_id = edition.list_id
    started = time.monotonic()
    after_id = 0
    receipts = receipts_for(session, batch, settings.delivery_receipts, marks)
    with transport, receipts:
        lease = Lease.start(settings, batch, receipts.in_flight, marked=receipts.marked)
        if not receipts.begin(lease.claim):
            # No progress mark to be had: each outcome goes to the database before the next
            # message, under a claim whose token says so.
            lease = Lease.start(settings, batch, 1)
        lease.reserve(session, clock())
        session.commit()
        while True:
            status = session.scalar(select(Edition.status).where(Edition.id == batch.edition_id))
            if status != EditionStatus.SENDING:
                break
            if budget_s is not None and time.monotonic() - started > budget_s:
                result.more = True
                break
            lease.refresh(session, clock)
            ids = _claim_next(session, batch, after_id, lease, settings, clock)
            if not ids:
                session.commit()
                break
            after_id = ids[-1]
            group = _recipients(session, ids, list_id)
            # The claim is committed before its first message leaves, and no transaction is
            # left open while the group is sent. (One commit per group: under load each round
            # trip to the database waits for a CPU.)
            session.commit()
            _send_group(
                session, receipts, group, prepared, transport, lease, settings, result, clock,
            )  # fmt: skip
            if result.connection_lost or result.retry_after is not None or result.lease_lost:
                break
            if receipts.lost_marks:
                # The rest of the range under a fresh claim whose token says each outcome is
                # in the database: what the old one left reserved is freed and taken again.
                receipts.unreserve(lease.claim)
                receipts.switched()
                lease = Lease.start(settings, batch, 1)
                lease.reserve(session, clock())
                session.commit()
        # What it reserved and did not get to is free for the next run at once.
        receipts.unreserve(lease.claim)
        result.fenced = receipts.fenced
    session.commit()
    return result


def _send_group(
    session: Session,
    receipts: Receipts,
    group: list[tuple[Recipient, int, bool]],
    prepared: PreparedEdition,
    transport: Transport,
    lease: Lease,
    settings: Settings,
    result: BatchResult,
    clock: Callable[[], datetime],
) -> None:
    """Send a claimed group in id order, each outcome recorded before the next message.

    Stops (``result.lease_lost``) as soon as the lease no longer holds or a receipt finds the
    claim revoked; stops as well on a lost connection or the relay's rate limit, with the
    untried rows back in the queue.
    """
    claim = lease.claim

    def settle(recipient: Recipient, status: DeliveryStatus, attempts: int, error: str,
               message_id: str | None) -> bool:  # fmt: skip
        return receipts.settled(
            claim, recipient.delivery_id, status, attempts=attempts, error=error,
            message_id=message_id, at=clock(),
        )  # fmt: skip

    for recipient, attempts, receives in group:
        if not lease.holds(session, clock):
            # Too little lease left for another message, or revoked: the rest go back to the
            # queue (if the claim still holds) for whoever claims them next.
            result.lease_lost = result.more = True
            receipts.release(claim, LEASE_LAPSED, clock())
            return
        if not receives:
            recorded = settle(recipient, DeliveryStatus.SKIPPED, attempts, LEFT_BEFORE_TURN, None)
            result.skipped += 1
        else:
            message = prepared.personalise(recipient)
            try:
                transport.send(message.sender, recipient.email, message.data)
            except PermanentFailure as error:
                recorded = settle(recipient, DeliveryStatus.FAILED, attempts + 1, str(error),
                                  message.message_id)  # fmt: skip
                result.failed += 1
                if error.code is not None and error.stage in READER_STAGES:
                    result.refused.append((recipient.subscriber_id, str(error)))
            except TemporaryFailure as error:
                status = _requeue_or_fail(attempts + 1, str(error), settings, result)
                recorded = settle(recipient, status, attempts + 1, str(error), message.message_id)
            except DeliveryUncertain as error:
                recorded = settle(recipient, DeliveryStatus.UNCERTAIN, attempts + 1, str(error),
                                  message.message_id)  # fmt: skip
                result.uncertain += 1
            except Throttled as error:
                # Held back before it left: neither it nor the rest used up an attempt.
                result.retry_after = error.retry_after
                receipts.release(claim, str(error), clock())
                return
            except ConnectionLost as error:
                # Neither this message nor any after it left: all of them go back to the queue.
                result.connection_lost = True
                status = _requeue_or_fail(attempts + 1, str(error), settings, result)
                settle(recipient, status, attempts + 1, str(error), message.message_id)
                result.retry += receipts.release(claim, str(error), clock())
                return
            else:
                recorded = receipts.sent(claim, recipient.delivery_id, message.message_id, clock())
                result.sent += 1
        if not recorded:
            break
    else:
        if receipts.flush():  # the group's last receipt is in before the next claim
            return
    # A receipt changed nothing: the claim was revoked (its lease ran out while this worker
    # was stopped), or the reader's row is gone (erased). Whatever the claim still holds goes
    # back to the queue (nothing, after a revocation) and the batch stops.
    receipts.release(claim, LEASE_LAPSED, clock())
    result.lease_lost = result.more = True


def _requeue_or_fail(
    attempts: int, error: str, settings: Settings, result: BatchResult
) -> DeliveryStatus:
    if attempts >= settings.max_delivery_attempts:
        result.failed += 1
        result.errors.append(error)
        return DeliveryStatus.FAILED
    result.retry += 1
    return DeliveryStatus.QUEUED
