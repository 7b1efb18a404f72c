"""Recovering sends whose worker or tasks were lost, without mailing anyone twice.

A batch sends its claimed rows in ID order and commits each outcome before the next message,
so when its worker dies only the lowest unfinished row of the claim can have been in flight.
That one is marked uncertain (the server may have accepted it); the rest go back to the queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from newsletter.db import affected_rows
from newsletter.delivery.send import finish_if_complete
from newsletter.models import Delivery, DeliveryStatus, Edition, EditionStatus

LOST_IN_FLIGHT = (
    "the worker stopped while handing this message to the server; it may have been "
    "delivered, so it is not sent again unless an operator retries uncertain deliveries"
)


@dataclass
class Reconciled:
    uncertain: int = 0
    requeued: int = 0
    # Editions with queued deliveries and no live batch: enqueue their batches after commit.
    editions: list[int] = field(default_factory=list)


def reconcile(session: Session, *, now: datetime, stale_after: timedelta) -> Reconciled:
    """Release claims that stopped moving and find sends whose tasks vanished.

    ``stale_after`` must exceed the longest a live batch can go without finishing a message
    (the deliver task's time limit guarantees it).
    """
    result = Reconciled()
    cutoff = now - stale_after
    stale_claims = session.execute(
        select(Delivery.claim, func.min(Delivery.id), Delivery.edition_id)
        .where(Delivery.status == DeliveryStatus.SENDING)
        .group_by(Delivery.claim, Delivery.edition_id)
        .having(func.max(Delivery.updated_at) < cutoff)
    ).all()
    touched = set()
    for claim, in_flight, edition_id in stale_claims:
        session.execute(
            update(Delivery)
            .where(Delivery.id == in_flight)
            .values(
                status=DeliveryStatus.UNCERTAIN,
                claim=None,
                last_error=LOST_IN_FLIGHT,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        requeued = session.execute(
            update(Delivery)
            .where(Delivery.claim == claim, Delivery.status == DeliveryStatus.SENDING)
            .values(status=DeliveryStatus.QUEUED, claim=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        result.uncertain += 1
        result.requeued += affected_rows(requeued)
        touched.add(edition_id)

    recent = exists().where(Delivery.edition_id == Edition.id, Delivery.updated_at >= cutoff)
    queued = exists().where(
        Delivery.edition_id == Edition.id, Delivery.status == DeliveryStatus.QUEUED
    )
    idle = session.scalars(
        select(Edition.id).where(Edition.status == EditionStatus.SENDING, queued, ~recent)
    )
    touched.update(idle)
    for edition_id in sorted(touched):
        if not finish_if_complete(session, edition_id, now=now):
            result.editions.append(edition_id)
    return result


def retry_uncertain(session: Session, edition_id: int, *, now: datetime) -> int:
    """Queue an edition's uncertain deliveries again: the operator accepts a possible duplicate."""
    retried = session.execute(
        update(Delivery)
        .where(Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.UNCERTAIN)
        .values(status=DeliveryStatus.QUEUED, last_error="", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    count = affected_rows(retried)
    if count:
        session.execute(
            update(Edition)
            .where(Edition.id == edition_id, Edition.status == EditionStatus.SENT)
            .values(status=EditionStatus.SENDING, sent_at=None)
            .execution_options(synchronize_session=False)
        )
    return count
