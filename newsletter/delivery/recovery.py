"""Recovering sends whose worker or tasks were lost, without mailing anyone twice.

A batch claims a group of rows (``delivery_flush_size``), sends them, and records their
outcomes in one write. When its worker dies, any row of its last group still ``sending`` may
have reached the server without being recorded: those are marked uncertain and counted,
never sent again blindly. Rows it had not claimed yet are still queued and go out as usual.
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
    "the worker stopped while sending this message's group; it may have been delivered, so "
    "it is not sent again unless an operator retries uncertain deliveries"
)


@dataclass
class Reconciled:
    uncertain: int = 0
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
        select(Delivery.claim, Delivery.edition_id)
        .where(Delivery.status == DeliveryStatus.SENDING)
        .group_by(Delivery.claim, Delivery.edition_id)
        .having(func.max(Delivery.updated_at) < cutoff)
    ).all()
    touched = set()
    for claim, edition_id in stale_claims:
        lost = session.execute(
            update(Delivery)
            .where(
                Delivery.edition_id == edition_id,
                Delivery.claim == claim,
                Delivery.status == DeliveryStatus.SENDING,
            )
            .values(
                status=DeliveryStatus.UNCERTAIN,
                claim=None,
                last_error=LOST_IN_FLIGHT,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        result.uncertain += affected_rows(lost)
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
