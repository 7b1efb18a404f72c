"""Recovering sends whose worker or tasks were lost, without mailing anyone twice.

A batch claims a group of rows (``delivery_flush_size``) under a lease, sends them, and
records their outcomes in one write. Once a claim's lease has expired its worker is dead,
frozen or cut off, and sends nothing more on it (see :mod:`newsletter.delivery.lease`): any
of its rows still ``sending`` may have reached the server without being recorded, so they
are marked uncertain and counted, never sent again blindly. Rows it had not claimed yet are
still queued and go out as usual.

An operator may queue the uncertain rows again, accepting that a reader may get two. Only
rows whose first attempt can no longer complete go (their lease expired more than
``smtp_timeout`` ago), and each is marked ``maybe_duplicate`` so the ledger says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

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
    """Revoke the claims whose lease has expired, marking their unrecorded rows uncertain;
    find sends whose tasks vanished.

    The revocation is conditional on the lease still being expired when it runs, so a claim
    renewed meanwhile keeps its rows. ``stale_after`` applies only to claims made before
    leases existed (no ``lease_until``) and to finding sends with queued rows and no
    movement. Returns the editions touched.
    """
    result = Released()
    cutoff = now - stale_after
    expired = or_(
        Delivery.lease_until < now,
        and_(Delivery.lease_until.is_(None), Delivery.updated_at < cutoff),
    )
    stale_claims = session.execute(
        select(Delivery.claim, Delivery.edition_id)
        .where(Delivery.status == DeliveryStatus.SENDING, expired)
        .group_by(Delivery.claim, Delivery.edition_id)
    ).all()
    for claim, edition_id in stale_claims:
        lost = session.execute(
            update(Delivery)
            .where(
                Delivery.edition_id == edition_id,
                Delivery.claim == claim,
                Delivery.status == DeliveryStatus.SENDING,
                expired,
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
    idle = set(
        session.scalars(
            select(Edition.id).where(Edition.status == EditionStatus.SENDING, queued, ~recent)
        )
    )
    if idle:
        # Their batches are about to be enqueued again: the stamp makes them look busy for
        # ``stale_after``, so reconcile runs meanwhile do not pile more tasks on the queue.
        session.execute(
            update(Delivery)
            .where(Delivery.edition_id.in_(idle), Delivery.status == DeliveryStatus.QUEUED)
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )
    result.editions.update(idle)
    return result


@dataclass(frozen=True)
class Requeued:
    queued: int  # uncertain rows queued again, each marked maybe_duplicate
    waiting: int  # uncertain rows whose first attempt might still complete: left for now
    ready_at: datetime | None  # when the last of those may be retried


def _settled_before(now: datetime, smtp_timeout: timedelta) -> ColumnElement[bool]:
    """Uncertain rows whose first attempt can no longer complete: recorded by their worker
    (no lease left), or revoked more than an SMTP timeout after their lease ran out."""
    return or_(Delivery.lease_until.is_(None), Delivery.lease_until < now - smtp_timeout)


def requeue_uncertain(
    session: Session, edition_id: int, *, now: datetime, smtp_timeout: timedelta
) -> Requeued:
    """Queue an edition's uncertain deliveries again: the operator accepts a possible duplicate.

    A row whose revoked claim might still be finishing its message is left uncertain until
    its lease has been over for ``smtp_timeout``; the rest are queued, marked
    ``maybe_duplicate`` (they stay so once sent), and their lease cleared.
    """
    uncertain = and_(Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.UNCERTAIN)
    settled = _settled_before(now, smtp_timeout)
    retried = session.execute(
        update(Delivery)
        .where(uncertain, settled)
        .values(
            status=DeliveryStatus.QUEUED,
            last_error="",
            lease_until=None,
            maybe_duplicate=True,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    waiting, latest = session.execute(
        select(func.count(), func.max(Delivery.lease_until)).where(uncertain)
    ).one()
    return Requeued(
        queued=affected_rows(retried),
        waiting=int(waiting),
        ready_at=None if latest is None else latest + smtp_timeout,
    )
