"""A batch's lease: how long it may hold its range and go on sending the group it claimed.

A batch run takes one claim token. On starting it reserves the queued rows of its range
(``claim`` set, ``status`` still ``queued``), then claims them a group at a time (``sending``
under the same token). Every row it holds carries ``lease_until``. Other runs leave reserved
rows alone while their lease lasts and may take them once it has expired, so a range whose
worker froze or was cut off is not stranded; the reconciler revokes only expired leases
(:mod:`newsletter.delivery.recovery`), and every outcome is written conditional on the token
and ``status='sending'`` (:mod:`newsletter.delivery.receipts`), so a revoked claim can
neither send nor record.

The worker keeps its own copy of the deadline on its monotonic clock, started before it asked
for the lease, so its copy always runs out first. Before each message it asks
:meth:`Lease.holds`, one comparison while the lease is young; past half of it, it renews
(one conditional UPDATE), and with less than ``smtp_timeout`` left, or once renewal fails, it
sends nothing more. A worker frozen longer than its lease (SIGSTOP, a paused VM) therefore
wakes to find the lease gone and sends at most the message that was in flight.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db import affected_rows
from newsletter.delivery.fanout import BatchRange
from newsletter.models import Delivery, DeliveryStatus

log = logging.getLogger(__name__)

# Claims whose outcomes are written one by one, in id order (see
# :mod:`newsletter.delivery.receipts`), are named "r<n>-...": of their rows still
# ``sending``, only the first n can have gone out unrecorded, and the reconciler takes the
# rest as never tried. Claims that keep a progress mark in Redis (:mod:`..marks`) are named
# "m<n>-...": the same holds of the rows past their mark. Claims that write a whole group's
# outcomes at once lack a prefix and are all counted uncertain.
_IN_ORDER = re.compile(r"([rm])([1-9])-")


def in_flight(claim: str | None) -> int | None:
    """How many of a stopped claim's unrecorded rows (past its mark, if it has one) may have
    gone out; None: all of them."""
    match = _IN_ORDER.match(claim or "")
    return int(match.group(2)) if match else None


def marked(claim: str | None) -> bool:
    """Whether the claim kept a progress mark in Redis."""
    match = _IN_ORDER.match(claim or "")
    return match is not None and match.group(1) == "m"


# The worker's own clock for its leases: never set back, unmoved by NTP. A seam for tests.
monotonic = time.monotonic


@dataclass
class Lease:
    """One batch run's token over its range and, by this worker's monotonic clock, when it
    stops holding."""

    claim: str
    seconds: float
    margin: float  # the longest one message may take: nothing starts with less than this left
    scope: BatchRange
    expires_at: datetime | None = None  # ``lease_until`` of its rows, by the install's clock
    deadline: float = 0.0
    renew_at: float = 0.0
    lost: bool = field(default=False)

    @classmethod
    def start(
        cls, settings: Settings, scope: BatchRange, in_flight: int | None = 1, *,
        marked: bool = False,
    ) -> Lease:  # fmt: skip
        """A fresh token for the range, for a run whose receipts leave up to ``in_flight`` rows
        unrecorded (None: any of a group), past its progress mark if ``marked``; its deadline
        runs once :meth:`reserve` asks."""
        kind = "m" if marked else "r"
        token = uuid.uuid4().hex if in_flight is None else f"{kind}{in_flight}-{uuid.uuid4().hex}"
        return cls(token, settings.delivery_lease_seconds, settings.smtp_timeout, scope)

    def _run_from(self, started: float, now: datetime) -> datetime:
        self.deadline = started + self.seconds
        self.renew_at = started + self.seconds / 2
        self.expires_at = now + timedelta(seconds=self.seconds)
        self.lost = False
        return self.expires_at

    def _rows(self, *statuses: DeliveryStatus) -> ColumnElement[bool]:
        return and_(
            Delivery.edition_id == self.scope.edition_id,
            Delivery.id.between(self.scope.first_id, self.scope.last_id),
            Delivery.status.in_(statuses),
            Delivery.claim == self.claim,
        )

    def reserve(self, session: Session, now: datetime) -> int:
        """Reserve the range's queued rows that no live lease holds; returns how many.

        Rows reserved by a run whose lease has expired are taken over. The caller commits.
        """
        until = self._run_from(monotonic(), now)
        takeable = (
            select(Delivery.id)
            .where(
                Delivery.edition_id == self.scope.edition_id,
                Delivery.id.between(self.scope.first_id, self.scope.last_id),
                Delivery.status == DeliveryStatus.QUEUED,
                free(now),
            )
            .with_for_update(skip_locked=True)  # not waiting on a cut-off worker's locks
            .scalar_subquery()
        )
        return affected_rows(
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(takeable))
                .values(claim=self.claim, lease_until=until)
                .execution_options(synchronize_session=False)
            )
        )

    def holds(self, session: Session, clock: Clock) -> bool:
        """Whether another message of the claimed group may start now; renews the lease past
        half-time. The clock is read only when a renewal is due: usually one comparison."""
        at = monotonic()
        if self.lost:
            return False
        if at < self.renew_at:
            return True
        if at >= self.deadline - self.margin:
            self.lost = True
            return False
        return self.renew(session, at, clock())

    def renew(self, session: Session, started: float, now: datetime) -> bool:
        """Extend the lease of every row still held by this claim, and commit it; False (and
        the lease lost) if the claim holds nothing any more: it was revoked."""
        renewed = self._extend(session, started, now)
        if not renewed:
            log.warning("claim %s was revoked while its worker held it: sending stops", self.claim)
            self.lost = True
            return False
        return True

    def refresh(self, session: Session, clock: Clock) -> None:
        """Between groups: renew the reservation if half of it is gone. Whatever another run
        took over meanwhile stays with it; the rest is this run's again."""
        at = monotonic()
        if at >= self.renew_at:
            self._extend(session, at, clock())

    def _extend(self, session: Session, started: float, now: datetime) -> int:
        until = self._run_from(started, now)
        renewed = affected_rows(
            session.execute(
                update(Delivery)
                .where(self._rows(DeliveryStatus.SENDING, DeliveryStatus.QUEUED))
                .values(lease_until=until)
                .execution_options(synchronize_session=False)
            )
        )
        session.commit()
        return renewed


def free(now: datetime) -> ColumnElement[bool]:
    """A queued row no live lease holds: never reserved, released, or its lease expired."""
    return or_(Delivery.claim.is_(None), Delivery.lease_until.is_(None), Delivery.lease_until < now)


__all__ = ["Lease", "free", "in_flight", "marked"]
