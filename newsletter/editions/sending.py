"""An edition's send, as the workers (or the in-process hand-off) drive it.

Each function is one unit of work for a task: it calls the delivery machinery, then moves the
edition along its lifecycle. The hand-off's two implementations call exactly these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.delivery import recovery
from newsletter.delivery.batch import BatchResult, deliver_batch
from newsletter.delivery.fanout import BatchRange, pending_batches
from newsletter.delivery.marks import ProgressMarks
from newsletter.delivery.transports import Transport
from newsletter.editions import lifecycle

__all__ = ["BatchRange", "Reconciled", "batches", "reconcile", "retry_uncertain", "run_batch"]


def batches(session: Session, edition_id: int, settings: Settings) -> list[BatchRange]:
    """The edition's queued deliveries in ranges of ``batch_size``: one task each."""
    return pending_batches(session, edition_id, settings.batch_size)


def run_batch(
    session: Session,
    batch: BatchRange,
    transport: Transport,
    settings: Settings,
    *,
    clock: Clock,
    budget_s: float | None = None,
    marks: ProgressMarks | None = None,
) -> BatchResult:
    """Send one range, then mark the edition sent if nothing of it is left anywhere."""
    result = deliver_batch(
        session, batch, transport, settings, clock=clock, budget_s=budget_s, marks=marks
    )
    lifecycle.finish_if_complete(session, batch.edition_id, now=clock())
    session.commit()
    return result


@dataclass
class Reconciled:
    recorded: int = 0  # accepted before their worker stopped, by its progress mark: sent
    uncertain: int = 0  # in flight when their worker stopped: maybe delivered
    untried: int = 0  # claimed or reserved by a stopped worker, never tried: queued again
    # Ranges a stopped worker left behind: enqueue one batch each, after commit.
    stranded: list[BatchRange] = field(default_factory=list)
    # Editions with queued deliveries and no live batch: enqueue all their batches.
    editions: list[int] = field(default_factory=list)


def reconcile(
    session: Session,
    *,
    now: datetime,
    stale_after: timedelta,
    marks: ProgressMarks | None = None,
) -> Reconciled:
    """Release claims that stopped moving, finish what is done, and list the sends to resume.

    ``marks`` reads the progress of claims that kept one in Redis."""
    released = recovery.release_stale_claims(session, now=now, stale_after=stale_after, marks=marks)
    finished = {
        edition_id
        for edition_id in sorted(released.editions)
        if lifecycle.finish_if_complete(session, edition_id, now=now)
    }
    return Reconciled(
        recorded=released.recorded,
        uncertain=released.uncertain,
        untried=released.untried + released.freed,
        stranded=[batch for batch in released.stranded if batch.edition_id not in finished],
        editions=sorted(released.idle - finished),
    )


def retry_uncertain(
    session: Session, edition_id: int, *, now: datetime, settings: Settings
) -> recovery.Requeued:
    """Queue the edition's uncertain deliveries whose first attempt can no longer complete
    again, as possible duplicates (a sent edition sends once more)."""
    requeued = recovery.requeue_uncertain(
        session, edition_id, now=now, smtp_timeout=timedelta(seconds=settings.smtp_timeout)
    )
    if requeued.queued:
        lifecycle.reopen_for_retry(session, edition_id)
    return requeued
