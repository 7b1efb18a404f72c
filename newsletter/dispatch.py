"""Which editions are due: the decision behind both ``newsletter dispatch`` and beat.

Every minute (beat) or every few minutes (cron), for each list whose scheduled time today
has passed: build today's edition if it does not exist, then hand back every scheduled
edition whose time has come. The database makes it safe to run twice at once: the unique
(list, date, frequency) key gives one edition per day, and ``start_sending`` moves an
edition out of ``scheduled`` for one caller only.

After downtime, an edition whose time passed less than ``dispatch_grace_minutes`` ago is
sent late; an older one is recorded as missed (its posts roll over to the next edition).
A draft of a list that needs approval waits for an editor until the same grace runs out.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import affected_rows
from newsletter.digest.build import build_edition
from newsletter.digest.schedule import is_due, local_date, scheduled_time
from newsletter.editions.service import refresh_posts
from newsletter.models import Edition, EditionStatus, Frequency, NewsletterList

log = logging.getLogger(__name__)


def dispatch_due(session: Session, *, now: datetime, settings: Settings) -> list[int]:
    """Build what is due today, record what was missed; return the editions to send now."""
    grace = timedelta(minutes=settings.dispatch_grace_minutes)
    for nl in session.scalars(select(NewsletterList).order_by(NewsletterList.id)):
        if is_due(nl.schedule, nl.timezone, now):
            _build_today(session, nl, now=now, grace=grace, settings=settings)
    _record_missed(session, now=now, grace=grace)
    return list(
        session.scalars(
            select(Edition.id)
            .where(Edition.status == EditionStatus.SCHEDULED, Edition.scheduled_at <= now)
            .order_by(Edition.scheduled_at, Edition.id)
        )
    )


def _build_today(
    session: Session, nl: NewsletterList, *, now: datetime, grace: timedelta, settings: Settings
) -> None:
    today = local_date(nl.timezone, now)
    moment = scheduled_time(nl.schedule, nl.timezone, today)
    frequencies = [Frequency.DAILY]
    if today.weekday() == nl.weekly_day:
        frequencies.append(Frequency.WEEKLY)
    for frequency in frequencies:
        existing = session.scalar(
            select(Edition).where(
                Edition.list_id == nl.id,
                Edition.edition_date == today,
                Edition.frequency == frequency,
            )
        )
        if existing is None and moment is not None and now - moment > grace:
            _missed_day(session, nl, today, frequency, moment, now=now)
            continue
        if existing is not None:
            early = (EditionStatus.DRAFT, EditionStatus.SKIPPED)
            if existing.status in early and not nl.requires_approval:
                # Built early by an editor: it goes at the list's time with what is new.
                refresh_posts(session, existing, now=now, settings=settings)
                if existing.status == EditionStatus.DRAFT:
                    existing.status = EditionStatus.SCHEDULED
                    existing.scheduled_at = moment or now
            continue
        result = build_edition(session, nl, today, now=now, settings=settings, frequency=frequency)
        if result.created and result.edition.status == EditionStatus.SKIPPED:
            log.info(
                "list %s: %s edition of %s skipped: %s",
                nl.slug, frequency.value, today, result.edition.skip_reason,
            )  # fmt: skip


def _missed_day(
    session: Session,
    nl: NewsletterList,
    day: date,
    frequency: Frequency,
    moment: datetime,
    *,
    now: datetime,
) -> None:
    """Record an edition never built in time, so the day is accounted for and not retried."""
    edition = Edition(
        list_id=nl.id, edition_date=day, frequency=frequency, window_start=moment,
        cutoff=moment, status=EditionStatus.MISSED, scheduled_at=moment,
        skip_reason=_missed_reason(moment, now),
    )  # fmt: skip
    try:
        with session.begin_nested():
            session.add(edition)
    except IntegrityError:
        return  # another dispatcher recorded it first
    log.warning("list %s: %s edition of %s missed", nl.slug, frequency.value, day)


def _missed_reason(moment: datetime, now: datetime) -> str:
    late = int((now - moment).total_seconds() // 60)
    return (
        f"its time ({moment:%Y-%m-%d %H:%M} UTC) passed {late} minutes before the dispatcher "
        "ran, beyond the grace window; its posts go into the next edition"
    )


def _record_missed(session: Session, *, now: datetime, grace: timedelta) -> None:
    """Scheduled editions and drafts awaiting approval whose time + grace has passed."""
    late = session.execute(
        select(Edition.id, Edition.scheduled_at).where(
            Edition.status.in_([EditionStatus.SCHEDULED, EditionStatus.DRAFT]),
            Edition.scheduled_at < now - grace,
        )
    ).all()
    for edition_id, moment in late:
        assert moment is not None  # the query compared it
        missed = session.execute(
            update(Edition)
            .where(
                Edition.id == edition_id,
                or_(
                    Edition.status == EditionStatus.SCHEDULED,
                    Edition.status == EditionStatus.DRAFT,
                ),
            )
            .values(status=EditionStatus.MISSED, skip_reason=_missed_reason(moment, now))
            .execution_options(synchronize_session=False)
        )
        if affected_rows(missed):
            log.warning("edition %s missed: %s", edition_id, _missed_reason(moment, now))
