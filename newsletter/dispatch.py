"""Which lists are due: the decision behind both ``newsletter dispatch`` and beat."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.digest.build import build_edition
from newsletter.digest.schedule import is_due, local_date
from newsletter.models import EditionStatus, NewsletterList

log = logging.getLogger(__name__)


def dispatch_due(session: Session, *, now: datetime, settings: Settings) -> list[int]:
    """Build today's edition of every list whose scheduled time has passed.

    Returns the IDs of the editions that are ready to send. The unique (list, date) key makes
    a second dispatcher, or a cron firing twice, find the same edition instead of a new one;
    sending twice is harmless too (see ``start_sending``).
    """
    ready = []
    for nl in session.scalars(select(NewsletterList).order_by(NewsletterList.id)):
        if not is_due(nl.schedule, nl.timezone, now):
            continue
        result = build_edition(
            session, nl, local_date(nl.timezone, now), now=now, settings=settings
        )
        edition = result.edition
        if edition.status == EditionStatus.BUILT:
            ready.append(edition.id)
        elif result.created and edition.status == EditionStatus.SKIPPED:
            log.info(
                "list %s: edition %s skipped: %s",
                nl.slug,
                edition.edition_date,
                edition.skip_reason,
            )
    return ready
