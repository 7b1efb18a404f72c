"""Recovering sends whose worker or tasks were lost, without mailing anyone twice.

A batch claims a group of rows (``delivery_flush_size``) under a lease, and sends them in id
order, recording each outcome before it tries the next message
(:mod:`newsletter.delivery.receipts`): in the database, or as a progress mark in Redis
(:mod:`newsletter.delivery.marks`). Once a claim's lease has expired its worker is dead,
frozen or cut off, and sends nothing more on it (see :mod:`newsletter.delivery.lease`). Of
its rows still ``sending``, those up to its progress mark were accepted and are recorded as
sent; only the first one or two after that may have reached the server without being
recorded: they are marked uncertain and counted, never sent again blindly; the ones after
them were never tried and go back to the queue. Rows it had not claimed are still queued and
go out as usual.

An operator may queue the uncertain rows again, accepting that a reader may get two. Only
rows whose first attempt can no longer complete go (their lease expired more than
``smtp_timeout`` ago), and each is marked ``maybe_duplicate`` so the ledger says so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from newsletter.db import affected_rows
from newsletter.delivery.fanout import BatchRange
from newsletter.delivery.lease import in_flight, marked
from newsletter.delivery.marks import MarksUnavailable, ProgressMarks
from newsletter.models import Delivery, DeliveryStatus, Edition, EditionStatus

log = logging.getLogger(__name__)


@dataclass
class Released:
    recorded: int = 0  # rows a stopped worker's progress mark shows accepted: sent
    uncertain: int = 0  # rows in flight when their worker stopped: maybe delivered
    untried: int = 0  # rows of a revoked claim its worker never tried: queued again
    freed: int = 0  # queued rows whose reservation expired: free for any batch
    editions: set[int] = field(default_factory=set)  # editions to look at again
    # One range per revoked claim, over the rows it left behind: enqueue one batch for each.
    stranded: list[BatchRange] = field(default_factory=list)
    idle: set[int] = field(default_factory=set)  # sends with queued rows and no movement


LOST_IN_FLIGHT = (
    "the worker stopped while sending this message's group; it may have been delivered, so "
    "it is not sent again unless an operator retries uncertain deliveries"
)
NEVER_TRIED = "its worker stopped before its turn; queued again for another"
NO_MARK = (
    "the worker stopped while sending this message's group, and its progress mark is gone; "
    "it may have been delivered, so it is not sent again unless an operator retries "
    "uncertain deliveries"
)


def _bound_lock_waits(session: Session) -> None:
    """On PostgreSQL, wait at most 10 s for a row lock: a worker cut off inside a transaction
    holds its locks until the server notices, and the next run can try again rather than
    hang."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL lock_timeout = '10s'"))


def _settle(
    session: Session, ids: Sequence[int], held: ColumnElement[bool], **values: object
) -> None:
    """Set ``values`` on those of ``ids`` the revoked claim still holds."""
    if ids:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids), held)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def _progress(
    claims: Sequence[str | None], marks: ProgressMarks | None
) -> dict[str, int | None] | None:
    """The progress marks of those claims that kept one; None: Redis cannot say right now."""
    wanted = [claim for claim in claims if claim is not None and marked(claim)]
    if not wanted:
        return {}
    if marks is None:
        log.error(
            "claims %s keep their progress in Redis, and none is configured here "
            "(NEWSLETTER_REDIS_URL): they are left for a reconcile that can read them",
            wanted,
        )  # fmt: skip
        return None
    try:
        return marks.read(wanted)
    except MarksUnavailable as error:
        log.warning("claims %s are left for the next reconcile: %s", wanted, error)
        return None


def release_stale_claims(
    session: Session,
    *,
    now: datetime,
    stale_after: timedelta,
    marks: ProgressMarks | None = None,
) -> Released:
    """Revoke the claims whose lease has expired and free their reserved rows; find sends
    whose tasks vanished.

    Of a revoked claim's unrecorded rows, those up to its progress mark (``marks``) are
    recorded as sent, the next one or two (in flight) are marked uncertain and the rest
    queued again; a marked claim whose mark is gone (or was taken by another Redis process)
    has all of them uncertain, and one whose mark cannot be read right now (Redis down, or
    not configured here) is left for the next run. The range a claim leaves
    behind is returned once, to be enqueued once: the
    next run finds nothing of it left to revoke. The revocation is conditional on the lease
    still being expired when it runs, so a claim renewed meanwhile keeps its rows.
    ``stale_after`` applies only to claims made before leases existed (no ``lease_until``)
    and to finding sends with queued rows and no movement.
    """
    result = Released()
    cutoff = now - stale_after
    expired = or_(
        Delivery.lease_until < now,
        and_(Delivery.lease_until.is_(None), Delivery.updated_at < cutoff),
    )
    _bound_lock_waits(session)
    stale_claims = session.execute(
        select(Delivery.claim, Delivery.edition_id)
        .where(Delivery.status == DeliveryStatus.SENDING, expired)
        .group_by(Delivery.claim, Delivery.edition_id)
    ).all()
    progress = _progress([claim for claim, _ in stale_claims], marks)
    left: dict[tuple[int, str | None], list[int]] = {}
    for claim, edition_id in stale_claims:
        if marked(claim) and progress is None:
            continue
        # Locked (rows a live writer holds are left for the next run), so a renewal or a
        # receipt cannot land between reading the rows and settling them.
        ids = session.scalars(
            select(Delivery.id)
            .where(
                Delivery.edition_id == edition_id,
                Delivery.claim == claim,
                Delivery.status == DeliveryStatus.SENDING,
                expired,
            )
            .order_by(Delivery.id)
            .with_for_update(skip_locked=True)
        ).all()
        if not ids:
            continue
        # Checked again by each UPDATE: SQLite reads outside the write transaction, so a
        # receipt may land in between.
        held = and_(Delivery.claim == claim, Delivery.status == DeliveryStatus.SENDING)
        depth, why = in_flight(claim), LOST_IN_FLIGHT
        if marked(claim):
            assert progress is not None
            mark = progress.get(claim) if claim is not None else None
            if mark is None:
                depth, why = None, NO_MARK
            else:
                accepted = [i for i in ids if i <= mark]
                ids = ids[len(accepted) :]
                # Accepted by the server before the worker stopped: sent, once.
                _settle(session, accepted, held, status=DeliveryStatus.SENT, claim=None,
                        lease_until=None, last_error="", attempts=Delivery.attempts + 1,
                        sent_at=now, updated_at=now)  # fmt: skip
                result.recorded += len(accepted)
                result.editions.add(edition_id)
        lost, untried = (ids, []) if depth is None else (ids[:depth], ids[depth:])
        _settle(session, lost, held, status=DeliveryStatus.UNCERTAIN, claim=None,
                last_error=why, updated_at=now)  # fmt: skip
        _settle(session, untried, held, status=DeliveryStatus.QUEUED, claim=None,
                lease_until=None, last_error=NEVER_TRIED, updated_at=now)  # fmt: skip
        result.uncertain += len(lost)
        result.untried += len(untried)
        result.editions.add(edition_id)
        if untried:
            left[(edition_id, claim)] = [untried[0], untried[-1]]

    # Rows a run reserved and never claimed: its worker stopped between groups, or before
    # its first. Freed, so any batch of the range may take them.
    reserved = and_(
        Delivery.status == DeliveryStatus.QUEUED,
        Delivery.claim.is_not(None),
        Delivery.lease_until < now,
    )
    stranded = session.execute(
        select(Delivery.edition_id, Delivery.claim, func.min(Delivery.id), func.max(Delivery.id))
        .where(reserved)
        .group_by(Delivery.edition_id, Delivery.claim)
    ).all()
    for edition_id, claim, first_id, last_id in stranded:
        lockable = (
            select(Delivery.id)
            .where(Delivery.edition_id == edition_id, Delivery.claim == claim, reserved)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        freed = session.execute(
            update(Delivery)
            .where(Delivery.id.in_(lockable))
            .values(claim=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )
        result.freed += affected_rows(freed)
        result.editions.add(edition_id)
        bounds = left.setdefault((edition_id, claim), [first_id, last_id])
        bounds[:] = [min(bounds[0], first_id), max(bounds[1], last_id)]
    result.stranded = [
        BatchRange(edition_id, first_id, last_id)
        for (edition_id, _), (first_id, last_id) in sorted(left.items(), key=lambda i: i[1])
    ]

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
    result.idle = idle
    result.stranded = [batch for batch in result.stranded if batch.edition_id not in idle]
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
