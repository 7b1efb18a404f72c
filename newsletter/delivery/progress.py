"""How far a send has got: one shape for the admin, the editor API and the CLI."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.models import Delivery, DeliveryStatus, Edition, EditionStatus


class UnknownEdition(LookupError):
    """There is no edition with that ID."""


@dataclass(frozen=True)
class Progress:
    """An edition's delivery counts, and how fast they are moving."""

    edition_id: int
    status: EditionStatus
    total: int
    sent: int
    maybe_duplicate: int  # of the sent, queued again while uncertain: may have arrived twice
    failed: int
    skipped: int
    uncertain: int
    queued: int
    sending: int
    remaining: int  # queued or in flight
    done: int  # with a final state
    percent: float  # rounded down: 100 only once nothing is left
    rate_per_s: float | None  # messages sent per second since sending started
    eta_s: int | None  # seconds until the rest are sent at that rate


def progress(session: Session, edition_id: int, *, now: datetime) -> Progress:
    """Count the edition's deliveries by status, as committed, and measure the pace."""
    edition = session.get(Edition, edition_id)
    if edition is None:
        raise UnknownEdition(f"There is no edition {edition_id}.")
    session.refresh(edition)
    maybe_duplicate = session.scalar(
        select(func.count()).where(
            Delivery.edition_id == edition_id,
            Delivery.status == DeliveryStatus.SENT,
            Delivery.maybe_duplicate.is_(True),
        )
    )
    counts = {
        DeliveryStatus(status): int(count)
        for status, count in session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.edition_id == edition_id)
            .group_by(Delivery.status)
        ).all()
    }
    return measure(
        edition_id, edition.status, counts, started=edition.send_started_at,
        finished=edition.sent_at or edition.cancelled_at, now=now,
        maybe_duplicate=int(maybe_duplicate or 0),
    )  # fmt: skip


def measure(
    edition_id: int,
    status: EditionStatus,
    counts: Mapping[DeliveryStatus, int],
    *,
    started: datetime | None,
    finished: datetime | None,
    now: datetime,
    maybe_duplicate: int = 0,
) -> Progress:
    """The rate is messages sent over the time since sending started (until it finished)."""
    total = sum(counts.values())
    sent = counts.get(DeliveryStatus.SENT, 0)
    remaining = counts.get(DeliveryStatus.QUEUED, 0) + counts.get(DeliveryStatus.SENDING, 0)
    done = total - remaining
    if total:
        percent = math.floor(done * 1000 / total) / 10
    else:
        percent = 100.0 if status == EditionStatus.SENT else 0.0
    rate = None
    if started is not None and sent:
        elapsed = max(((finished or now) - started).total_seconds(), 0.001)
        rate = round(sent / elapsed, 2)
    eta = None
    if rate and remaining and status == EditionStatus.SENDING:
        eta = math.ceil(remaining / rate)
    return Progress(
        edition_id=edition_id, status=status, total=total, sent=sent,
        maybe_duplicate=maybe_duplicate,
        failed=counts.get(DeliveryStatus.FAILED, 0), skipped=counts.get(DeliveryStatus.SKIPPED, 0),
        uncertain=counts.get(DeliveryStatus.UNCERTAIN, 0),
        queued=counts.get(DeliveryStatus.QUEUED, 0), sending=counts.get(DeliveryStatus.SENDING, 0),
        remaining=remaining, done=done, percent=percent, rate_per_s=rate, eta_s=eta,
    )  # fmt: skip
