"""A batch: claim a group of deliveries, send each over one connection, record the outcomes.

A row is claimed (``sending``, under a fresh claim and its lease) in a commit before its
message leaves, and marked sent only once the server accepted it, so a batch run twice never
mails anyone twice. Failures are split by kind: permanent ones are recorded and never
retried, temporary ones go back to the queue until ``max_delivery_attempts``, an uncertain
one (the connection dropped while the server had the whole message) is set aside for an
operator.

Fencing: every outcome is written only where the row is still ``sending`` under the claim
that sent it. A claim the reconciler revoked (its lease expired: the worker was frozen or
cut off) records nothing, and the batch logs how many outcomes it lost that way. The lease
itself, and how a batch stops sending once it lapses, is :mod:`newsletter.delivery.lease`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import Table, and_, bindparam, select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import affected_rows
from newsletter.delivery.errors import (
    ConnectionLost,
    DeliveryUncertain,
    PermanentFailure,
    TemporaryFailure,
    Throttled,
)
from newsletter.delivery.fanout import BatchRange
from newsletter.delivery.lease import Lease
from newsletter.delivery.prepared import PreparedEdition, Recipient, prepare_edition
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

_DELIVERIES = cast(Table, Delivery.__table__)
log = logging.getLogger(__name__)


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

    @property
    def needs_retry(self) -> bool:
        return self.retry > 0


@dataclass
class _Outcomes:
    """What happened to one claimed group of deliveries, written back in a few statements."""

    claim: str = ""
    sent: list[dict[str, object]] = field(default_factory=list)
    settled: list[dict[str, object]] = field(default_factory=list)  # failed, queued, uncertain
    skipped: list[int] = field(default_factory=list)


_BY_ID = _DELIVERIES.c.id == bindparam("b_id")
LEFT_BEFORE_TURN = "the reader left the list before their turn"
LEASE_LAPSED = "its batch's lease ran out before its turn; the next claim sends it"


def _write(session: Session, outcomes: _Outcomes, now: datetime) -> int:
    """Record a group's outcomes: one executemany per kind, not one commit per message.

    Each write holds only where the row is still ``sending`` under the group's claim; returns
    how many outcomes a revoked claim could not record (and logs them).
    """
    table = _DELIVERIES
    held = and_(table.c.claim == outcomes.claim, table.c.status == DeliveryStatus.SENDING)
    written = 0
    if outcomes.sent:
        written += affected_rows(session.execute(
            update(table).where(_BY_ID, held).values(
                status=DeliveryStatus.SENT, claim=None, lease_until=None, last_error="",
                attempts=table.c.attempts + 1, message_id=bindparam("b_message_id"),
                sent_at=bindparam("b_at"), updated_at=bindparam("b_at"),
            ),
            outcomes.sent,
        ))  # fmt: skip
    if outcomes.settled:
        written += affected_rows(session.execute(
            update(table).where(_BY_ID, held).values(
                status=bindparam("b_status"), claim=None, lease_until=None,
                last_error=bindparam("b_error"), attempts=bindparam("b_attempts"),
                message_id=bindparam("b_message_id"), updated_at=now,
            ),
            outcomes.settled,
        ))  # fmt: skip
    if outcomes.skipped:
        written += affected_rows(session.execute(
            update(table)
            .where(table.c.id.in_(outcomes.skipped), held)
            .values(
                status=DeliveryStatus.SKIPPED, claim=None, lease_until=None,
                last_error=LEFT_BEFORE_TURN, updated_at=now,
            )
        ))  # fmt: skip
    fenced = len(outcomes.sent) + len(outcomes.settled) + len(outcomes.skipped) - written
    if fenced:
        log.warning(
            "claim %s was revoked: %s outcomes not recorded (%s of them sent: deliveries %s)",
            outcomes.claim, fenced, len(outcomes.sent),
            [row["b_id"] for row in outcomes.sent][:20],
        )  # fmt: skip
    return fenced


def _claim_next(
    session: Session,
    batch: BatchRange,
    after_id: int,
    settings: Settings,
    clock: Callable[[], datetime],
) -> tuple[Lease, list[int]]:
    """Claim the next group of queued deliveries of the range past ``after_id``, under a fresh
    lease; no ids at the range's end.

    Walking forward means a row this run put back in the queue waits for the task's retry.
    A concurrent run of the same range claims disjoint rows: the UPDATE re-checks the status.
    """
    limit = settings.delivery_flush_size
    while True:
        candidates = session.scalars(
            select(Delivery.id)
            .where(
                Delivery.edition_id == batch.edition_id,
                Delivery.id.between(max(batch.first_id, after_id + 1), batch.last_id),
                Delivery.status == DeliveryStatus.QUEUED,
            )
            .order_by(Delivery.id)
            .limit(limit)
        ).all()
        lease = Lease.start(settings)
        if not candidates:
            return lease, []
        now = clock()
        claimed = session.scalars(
            update(Delivery)
            .where(Delivery.id.in_(candidates), Delivery.status == DeliveryStatus.QUEUED)
            .values(
                status=DeliveryStatus.SENDING,
                claim=lease.claim,
                lease_until=lease.until(now),
                updated_at=now,
            )
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        ).all()
        if claimed:
            return lease, sorted(claimed)
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
) -> BatchResult:
    """Send one batch, a group of ``delivery_flush_size`` deliveries at a time.

    Each group is claimed, sent, and its outcomes written back in the same commit that claims
    the next group. This is the one domain function that commits: the ledger must hold every
    claim before its messages leave. If the process dies mid-group, the group's unrecorded
    rows are left ``sending`` under their claim, and the reconciler counts them uncertain.

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
    list_id, sender = edition.list_id, prepared.from_address
    started = time.monotonic()
    outcomes = _Outcomes()
    after_id = 0
    with transport:
        while True:
            result.fenced += _write(session, outcomes, clock())
            status = session.scalar(select(Edition.status).where(Edition.id == batch.edition_id))
            if status != EditionStatus.SENDING:
                break
            if budget_s is not None and time.monotonic() - started > budget_s:
                result.more = True
                break
            lease, ids = _claim_next(session, batch, after_id, settings, clock)
            session.commit()
            if not ids:
                break
            after_id = ids[-1]
            outcomes = _send_group(
                session, _recipients(session, ids, list_id), prepared, sender, transport,
                lease, settings, result, clock,
            )  # fmt: skip
            if result.connection_lost or result.retry_after is not None or result.lease_lost:
                result.fenced += _write(session, outcomes, clock())
                break
    session.commit()
    return result


def _send_group(
    session: Session,
    group: list[tuple[Recipient, int, bool]],
    prepared: PreparedEdition,
    sender: str,
    transport: Transport,
    lease: Lease,
    settings: Settings,
    result: BatchResult,
    clock: Callable[[], datetime],
) -> _Outcomes:
    outcomes = _Outcomes(claim=lease.claim)
    for index, (recipient, attempts, receives) in enumerate(group):
        if not lease.holds(session, clock):
            # Too little lease left for another message, or revoked: the rest go back to the
            # queue (if the claim still holds) for whoever claims them next.
            result.lease_lost = result.more = True
            for waiting, waiting_attempts, _ in group[index:]:
                outcomes.settled.append(
                    _settled(waiting, DeliveryStatus.QUEUED, waiting_attempts, LEASE_LAPSED, None)
                )
            break
        if not receives:
            outcomes.skipped.append(recipient.delivery_id)
            result.skipped += 1
            continue
        message = prepared.personalise(recipient)
        try:
            transport.send(sender, recipient.email, message.data)
        except PermanentFailure as error:
            outcomes.settled.append(_settled(recipient, DeliveryStatus.FAILED, attempts + 1,
                                             str(error), message.message_id))  # fmt: skip
            result.failed += 1
        except TemporaryFailure as error:
            outcomes.settled.append(
                _requeue_or_fail(recipient, attempts + 1, str(error), message.message_id,
                                 settings, result)
            )  # fmt: skip
        except DeliveryUncertain as error:
            outcomes.settled.append(_settled(recipient, DeliveryStatus.UNCERTAIN, attempts + 1,
                                             str(error), message.message_id))  # fmt: skip
            result.uncertain += 1
        except Throttled as error:
            # Held back before it left: neither it nor the rest used up an attempt.
            result.retry_after = error.retry_after
            for waiting, waiting_attempts, _ in group[index:]:
                outcomes.settled.append(
                    _settled(waiting, DeliveryStatus.QUEUED, waiting_attempts, str(error), None)
                )
            break
        except ConnectionLost as error:
            # Neither this message nor any after it left: all of them go back to the queue.
            result.connection_lost = True
            outcomes.settled.append(
                _requeue_or_fail(recipient, attempts + 1, str(error), message.message_id,
                                 settings, result)
            )  # fmt: skip
            for later, later_attempts, _ in group[index + 1 :]:
                outcomes.settled.append(
                    _requeue_or_fail(later, later_attempts, str(error), None, settings, result)
                )
            break
        else:
            outcomes.sent.append(
                {"b_id": recipient.delivery_id, "b_message_id": message.message_id,
                 "b_at": clock()}
            )  # fmt: skip
            result.sent += 1
    return outcomes


def _settled(
    recipient: Recipient, status: DeliveryStatus, attempts: int, error: str, message_id: str | None
) -> dict[str, object]:
    return {
        "b_id": recipient.delivery_id, "b_status": status, "b_attempts": attempts,
        "b_error": error, "b_message_id": message_id,
    }  # fmt: skip


def _requeue_or_fail(
    recipient: Recipient,
    attempts: int,
    error: str,
    message_id: str | None,
    settings: Settings,
    result: BatchResult,
) -> dict[str, object]:
    if attempts >= settings.max_delivery_attempts:
        result.failed += 1
        result.errors.append(error)
        return _settled(recipient, DeliveryStatus.FAILED, attempts, error, message_id)
    result.retry += 1
    return _settled(recipient, DeliveryStatus.QUEUED, attempts, error, message_id)
