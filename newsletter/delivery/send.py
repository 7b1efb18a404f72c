"""Sending an edition: the ledger of deliveries is the source of truth.

``start_sending`` creates one delivery row per confirmed reader inside the database and
returns the batches to enqueue (after the caller commits). ``deliver_batch`` sends one batch
over one transport connection. A row is claimed before its message leaves and marked sent
only once the server accepted it, so a batch run twice never mails anyone twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import (
    Table,
    and_,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from newsletter.config import Settings
from newsletter.db import affected_rows
from newsletter.delivery.errors import ConnectionLost, PermanentFailure, TemporaryFailure
from newsletter.delivery.personalise import PreparedEdition, Recipient
from newsletter.delivery.transports import Transport
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Edition,
    EditionStatus,
    Frequency,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)


class SendError(ValueError):
    """An edition cannot be sent as asked; the message says why."""


@dataclass(frozen=True)
class BatchRange:
    """Deliveries of one edition with ``first_id <= id <= last_id``: a keyset range."""

    edition_id: int
    first_id: int
    last_id: int


@dataclass
class BatchResult:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retry: int = 0  # temporary failures put back in the queue
    errors: list[str] = field(default_factory=list)

    @property
    def needs_retry(self) -> bool:
        return self.retry > 0


def _receives(frequency: Frequency) -> ColumnElement[bool]:
    """Readers of an edition: confirmed, not paused, on its frequency, not blocked."""
    return and_(
        Subscription.status == SubscriptionStatus.CONFIRMED,
        Subscription.paused_at.is_(None),
        Subscription.frequency == frequency,
        Subscriber.status == SubscriberStatus.ACTIVE,
    )


def start_sending(session: Session, edition_id: int, *, now: datetime) -> int:
    """Move a built edition to sending and create its deliveries; returns how many.

    Only the caller whose UPDATE moves the edition out of ``built`` creates rows, so sending
    the same edition twice, even at once from two processes, creates them once.
    """
    edition = session.get(Edition, edition_id)
    if edition is None:
        raise SendError(f"no edition {edition_id}")
    if edition.status == EditionStatus.SKIPPED:
        raise SendError(f"edition {edition_id} was skipped: {edition.skip_reason}")
    moved = session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.status == EditionStatus.BUILT)
        .values(status=EditionStatus.SENDING, send_started_at=now)
        .execution_options(synchronize_session=False)
    )
    if not affected_rows(moved):
        return 0
    readers = (
        select(
            literal(edition_id),
            Subscription.subscriber_id,
            literal(DeliveryStatus.QUEUED.value),
            literal(0),
            literal(""),
            literal(now, Delivery.created_at.type),
            literal(now, Delivery.updated_at.type),
        )
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.list_id == edition.list_id, _receives(edition.frequency))
        .where(
            ~exists().where(
                Delivery.edition_id == edition_id,
                Delivery.subscriber_id == Subscription.subscriber_id,
            )
        )
        .order_by(Subscription.subscriber_id)
    )
    columns = ["edition_id", "subscriber_id", "status", "attempts", "last_error",
               "created_at", "updated_at"]  # fmt: skip
    # A Core insert of the table: the ORM's bulk-insert path would not report a row count.
    created = affected_rows(
        session.execute(
            insert(cast(Table, Delivery.__table__)).from_select(columns, readers),
            execution_options={"preserve_rowcount": True},
        )
    )
    # No reader at all: nothing will ever finish the edition, so finish it now.
    finish_if_complete(session, edition_id, now=now)
    session.refresh(edition)
    return created


def pending_batches(session: Session, edition_id: int, batch_size: int) -> list[BatchRange]:
    """Keyset ranges over the edition's queued deliveries, ``batch_size`` rows each."""
    numbered = (
        select(
            Delivery.id.label("id"),
            func.row_number().over(order_by=Delivery.id).label("n"),
        )
        .where(Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.QUEUED)
        .subquery()
    )
    bounds = session.execute(
        select(func.min(numbered.c.id), func.max(numbered.c.id))
        .group_by((numbered.c.n - 1) // batch_size)
        .order_by(func.min(numbered.c.id))
    ).all()
    return [BatchRange(edition_id, int(first), int(last)) for first, last in bounds]


def prepare_edition(edition: Edition, settings: Settings, *, now: datetime) -> PreparedEdition:
    nl = edition.newsletter_list
    return PreparedEdition(
        edition_id=edition.id,
        list_id=nl.id,
        list_slug=nl.slug,
        list_name=nl.name,
        subject=edition.subject,
        html=edition.html,
        text=edition.text,
        from_name=nl.from_name,
        from_address=nl.from_address,
        reply_to=nl.reply_to,
        domain=settings.message_domain,
        base_url=settings.base_url,
        secret_key=settings.secret_key,
        date=now,
    )


def _claim(session: Session, batch: BatchRange, claim: str, now: datetime) -> None:
    session.execute(
        update(Delivery)
        .where(
            Delivery.edition_id == batch.edition_id,
            Delivery.id.between(batch.first_id, batch.last_id),
            Delivery.status == DeliveryStatus.QUEUED,
        )
        .values(status=DeliveryStatus.SENDING, claim=claim, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def deliver_batch(
    session: Session,
    batch: BatchRange,
    transport: Transport,
    settings: Settings,
    *,
    clock: Callable[[], datetime],
) -> BatchResult:
    """Send one batch. Commits as it goes: each row's outcome is durable before the next.

    This is the one domain function that commits, because the ledger must record each
    acceptance by the server before the next message leaves.
    """
    result = BatchResult()
    edition = session.get(Edition, batch.edition_id)
    if edition is None or edition.status != EditionStatus.SENDING:
        return result
    claim = uuid.uuid4().hex
    _claim(session, batch, claim, clock())
    # Re-check each reader now: someone who left since the send began is skipped.
    rows = session.execute(
        select(
            Delivery,
            Subscriber.email,
            Subscription.status,
            Subscription.paused_at,
            Subscriber.status,
        )
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .outerjoin(
            Subscription,
            and_(
                Subscription.subscriber_id == Delivery.subscriber_id,
                Subscription.list_id == edition.list_id,
            ),
        )
        .where(Delivery.claim == claim, Delivery.status == DeliveryStatus.SENDING)
        .order_by(Delivery.id)
        # The claim was a bulk UPDATE: rows already in the session must be reloaded, or a
        # write of their old in-memory status would look like no change and be skipped.
        .execution_options(populate_existing=True)
    ).all()
    prepared = prepare_edition(edition, settings, now=clock())
    with transport:
        for index, (
            delivery,
            email,
            subscription_status,
            paused_at,
            subscriber_status,
        ) in enumerate(rows):
            now = clock()
            delivery.updated_at = now
            if (
                subscription_status != SubscriptionStatus.CONFIRMED
                or paused_at is not None
                or subscriber_status != SubscriberStatus.ACTIVE
            ):
                delivery.status, delivery.claim = DeliveryStatus.SKIPPED, None
                delivery.last_error = "the reader left the list before their turn"
                result.skipped += 1
                session.commit()
                continue
            message = prepared.personalise(Recipient(delivery.id, delivery.subscriber_id, email))
            delivery.message_id = message.message_id
            delivery.attempts += 1
            try:
                transport.send(prepared.from_address, email, message.data)
            except PermanentFailure as error:
                delivery.status, delivery.claim, delivery.last_error = (
                    DeliveryStatus.FAILED,
                    None,
                    str(error),
                )
                result.failed += 1
            except TemporaryFailure as error:
                _requeue_or_fail(delivery, str(error), settings, result)
            except ConnectionLost as error:
                # Nothing after this row left either: all of them go back to the queue.
                for later, *_ in rows[index:]:
                    later.updated_at = now
                    _requeue_or_fail(later, str(error), settings, result)
                session.commit()
                break
            else:
                delivery.status, delivery.claim, delivery.last_error = (
                    DeliveryStatus.SENT,
                    None,
                    "",
                )
                delivery.sent_at = now
                result.sent += 1
            session.commit()
    finish_if_complete(session, batch.edition_id, now=clock())
    session.commit()
    return result


def _requeue_or_fail(
    delivery: Delivery, error: str, settings: Settings, result: BatchResult
) -> None:
    delivery.claim, delivery.last_error = None, error
    if delivery.attempts >= settings.max_delivery_attempts:
        delivery.status = DeliveryStatus.FAILED
        result.failed += 1
        result.errors.append(error)
    else:
        delivery.status = DeliveryStatus.QUEUED
        result.retry += 1


def finish_if_complete(session: Session, edition_id: int, *, now: datetime) -> bool:
    """Mark the edition sent once no delivery is queued or in flight."""
    unfinished = exists().where(
        Delivery.edition_id == edition_id,
        Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]),
    )
    done = session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.status == EditionStatus.SENDING, ~unfinished)
        .values(status=EditionStatus.SENT, sent_at=now)
        .execution_options(synchronize_session=False)
    )
    return affected_rows(done) > 0


@dataclass(frozen=True)
class Progress:
    edition_id: int
    status: str
    total: int
    sent: int
    failed: int
    skipped: int
    uncertain: int
    queued: int
    sending: int

    @property
    def remaining(self) -> int:
        return self.queued + self.sending

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped + self.uncertain


def progress(session: Session, edition_id: int) -> Progress:
    edition = session.get(Edition, edition_id)
    if edition is None:
        raise SendError(f"no edition {edition_id}")
    session.refresh(edition)
    counts = dict(
        session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.edition_id == edition_id)
            .group_by(Delivery.status)
        ).all()
    )

    def get(status: DeliveryStatus) -> int:
        return int(counts.get(status, 0))

    return Progress(
        edition_id=edition_id,
        status=edition.status.value,
        total=sum(int(v) for v in counts.values()),
        sent=get(DeliveryStatus.SENT),
        failed=get(DeliveryStatus.FAILED),
        skipped=get(DeliveryStatus.SKIPPED),
        uncertain=get(DeliveryStatus.UNCERTAIN),
        queued=get(DeliveryStatus.QUEUED),
        sending=get(DeliveryStatus.SENDING),
    )
