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
from newsletter.models import Delivery, DeliveryStatus, Edition, EditionStatus


@dataclass
class Released:
    uncertain: int = 0  # rows whose claim was released as uncertain
    editions: set[int] = field(default_factory=set)  # editions to look at again


LOST_IN_FLIGHT = (
    "the worker stopped while sending this message's group; it may have been delivered, so "
    "it is not sent again unless an operator retries uncertain deliveries"
)


def release_stale_claims(session: Session, *, now: datetime, stale_after: timedelta) -> Released:
    """Mark uncertain the rows of claims that stopped moving; find sends whose tasks vanished.

    ``stale_after`` must exceed the longest a live batch can go without finishing a message
    (the deliver task's time limit guarantees it). Returns the editions touched: those whose
    claims were released, and those still sending with queued rows and no recent movement.
    """
    result = Released()
    cutoff = now - stale_after
    stale_claims = session.execute(
        select(Delivery.claim, Delivery.edition_id)
        .where(Delivery.status == DeliveryStatus.SENDING)
        .group_by(Delivery.claim, Delivery.edition_id)
        .having(func.max(Delivery.updated_at) < cutoff)
    ).all()
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
        result.editions.add(edition_id)

    recent = exists().where(Delivery.edition_id == Edition.id, Delivery.updated_at >= cutoff)
    queued = exists().where(
        Delivery.edition_id == Edition.id, Delivery.status == DeliveryStatus.QUEUED
    )
    idle = session.scalars(
        select(Edition.id).where(Edition.status == EditionStatus.SENDING, queued, ~recent)
    )
    result.editions.update(idle)
    return result


def requeue_uncertain(session: Session, edition_id: int, *, now: datetime) -> int:
    """Queue an edition's uncertain deliveries again: the operator accepts a possible duplicate."""
    retried = session.execute(
        update(Delivery)
        .where(Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.UNCERTAIN)
        .values(status=DeliveryStatus.QUEUED, last_error="", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return affected_rows(retried)
