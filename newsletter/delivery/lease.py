"""A claim's lease: how long a batch may go on sending the group it claimed.

Every row of a claim carries ``lease_until``. The reconciler revokes a claim only once that
time has passed (:mod:`newsletter.delivery.recovery`), and every write of an outcome is
conditional on the claim and ``status='sending'`` (:mod:`newsletter.delivery.batch`), so a
revoked claim can neither send nor record.

The worker keeps its own copy of the deadline on its monotonic clock, started before it asked
for the lease, so its copy always runs out first. Before each message it asks
:meth:`Lease.holds`, one comparison while the lease is young; past half of it, it renews
(one conditional UPDATE), and with less than ``smtp_timeout`` left, or once renewal fails, it
sends nothing more. A worker frozen longer than its lease (SIGSTOP, a paused VM) therefore
wakes to find the lease gone and sends at most the message that was in flight.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db import affected_rows
from newsletter.models import Delivery, DeliveryStatus

log = logging.getLogger(__name__)

# The worker's own clock for its leases: never set back, unmoved by NTP. A seam for tests.
monotonic = time.monotonic


@dataclass
class Lease:
    """One claim's token and, by this worker's monotonic clock, when it stops holding."""

    claim: str
    seconds: float
    margin: float  # the longest one message may take: nothing starts with less than this left
    deadline: float = 0.0
    renew_at: float = 0.0
    lost: bool = field(default=False)

    @classmethod
    def start(cls, settings: Settings) -> Lease:
        """A fresh token whose deadline runs from now, before the UPDATE that asks for it."""
        lease = cls(uuid.uuid4().hex, settings.delivery_lease_seconds, settings.smtp_timeout)
        lease._run_from(monotonic())
        return lease

    def _run_from(self, started: float) -> None:
        self.deadline = started + self.seconds
        self.renew_at = started + self.seconds / 2

    def until(self, now: datetime) -> datetime:
        """``lease_until`` for rows claimed (or renewed) at ``now``."""
        return now + timedelta(seconds=self.seconds)

    def holds(self, session: Session, clock: Clock) -> bool:
        """Whether another message may start now; renews the lease past half-time.

        The clock is read only when a renewal is due: the usual answer is one comparison.
        """
        at = monotonic()
        if at < self.renew_at:
            return True
        if self.lost or at >= self.deadline - self.margin:
            self.lost = True
            return False
        return self.renew(session, at, clock())

    def renew(self, session: Session, started: float, now: datetime) -> bool:
        """Extend the lease of every row still held by this claim, and commit it."""
        renewed = affected_rows(
            session.execute(
                update(Delivery)
                .where(Delivery.claim == self.claim, Delivery.status == DeliveryStatus.SENDING)
                .values(lease_until=self.until(now))
                .execution_options(synchronize_session=False)
            )
        )
        session.commit()
        if not renewed:
            log.warning("claim %s was revoked while its worker held it: sending stops", self.claim)
            self.lost = True
            return False
        self._run_from(started)
        return True


__all__ = ["Lease"]
