"""Which lists are due: the decision behind both ``newsletter dispatch`` and beat."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.digest.build import build_edition
from newsletter.digest.schedule import is_due, local_date
from newsletter.models import EditionStatus, Frequency, NewsletterList

log = logging.getLogger(__name__)


def dispatch_due(session: Session, *, now: datetime, settings: Settings) -> list[int]:
    """Build today's editions of every list whose scheduled time has passed.

    Every due list gets its daily edition; on the list's weekly day, also the weekly one for
    weekly readers. Returns the IDs of the editions ready to send. The unique
    (list, date, frequency) key makes a second dispatcher, or a cron firing twice, find the
    same edition instead of a new one; sending twice is harmless too (see ``start_sending``).
    """
    ready = []
    for nl in session.scalars(select(NewsletterList).order_by(NewsletterList.id)):
        if not is_due(nl.schedule, nl.timezone, now):
            continue
        today = local_date(nl.timezone, now)
        frequencies = [Frequency.DAILY]
        if today.weekday() == nl.weekly_day:
            frequencies.append(Frequency.WEEKLY)
        for frequency in frequencies:
            result = build_edition(
                session, nl, today, now=now, settings=settings, frequency=frequency
            )
            edition = result.edition
            if edition.status == EditionStatus.BUILT:
                ready.append(edition.id)
            elif result.created and edition.status == EditionStatus.SKIPPED:
                log.info(
                    "list %s: %s edition of %s skipped: %s",
                    nl.slug, frequency.value, today, edition.skip_reason,
                )  # fmt: skip
    return ready
