"""Which editions are due: the decision behind both ``newsletter dispatch`` and beat.

Every minute (beat) or every few minutes (cron), for each list whose scheduled time today
has passed: build today's edition if it does not exist (yesterday's too, within the grace
window, for an evening edition the dispatcher missed at midnight), then hand back every
scheduled edition whose time has come. The database makes it safe to run twice at once:
the unique (list, date, frequency) key gives one edition per day, an editor's early draft
is claimed by one UPDATE, and ``start_sending`` moves an edition out of ``scheduled`` for
one caller only.

After downtime, an edition whose time passed less than ``dispatch_grace_minutes`` ago is
sent late; an older one is recorded as missed (its posts roll over to the next edition).
A draft of a list that needs approval waits for an editor until the same grace runs out.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.editions import lifecycle
from newsletter.editions.build import build_edition
from newsletter.editions.service import refresh_posts
from newsletter.lists.schedule import due_days, edition_cutoff
from newsletter.models import Edition, EditionStatus, Frequency, NewsletterList

log = logging.getLogger(__name__)


def dispatch_due(session: Session, *, now: datetime, settings: Settings) -> list[int]:
    """Build what is due today, record what was missed; return the editions to send now."""
    grace = timedelta(minutes=settings.dispatch_grace_minutes)
    for nl in session.scalars(select(NewsletterList).order_by(NewsletterList.id)):
        for day, moment in due_days(nl.schedule, nl.timezone, now, grace):
            _build_day(session, nl, day, moment, now=now, grace=grace, settings=settings)
    _record_missed(session, now=now, grace=grace)
    return list(
        session.scalars(
            select(Edition.id)
            .where(Edition.status == EditionStatus.SCHEDULED, Edition.scheduled_at <= now)
            .order_by(Edition.scheduled_at, Edition.id)
        )
    )


def _build_day(
    session: Session,
    nl: NewsletterList,
    day: date,
    moment: datetime,
    *,
    now: datetime,
    grace: timedelta,
    settings: Settings,
) -> None:
    frequencies = [Frequency.DAILY]
    if day.weekday() == nl.weekly_day:
        frequencies.append(Frequency.WEEKLY)
    for frequency in frequencies:
        existing = session.scalar(
            select(Edition).where(
                Edition.list_id == nl.id,
                Edition.edition_date == day,
                Edition.frequency == frequency,
            )
        )
        if existing is None and now - moment > grace:
            _missed_day(session, nl, day, frequency, moment, now=now)
            continue
        if existing is not None:
            if existing.status in _EARLY and not nl.requires_approval:
                _schedule_early(session, existing, moment, now=now, settings=settings)
            continue
        result = build_edition(session, nl, day, now=now, settings=settings, frequency=frequency)
        if result.created and result.edition.status == EditionStatus.SKIPPED:
            log.info(
                "list %s: %s edition of %s skipped: %s",
                nl.slug, frequency.value, day, result.edition.skip_reason,
            )  # fmt: skip


# An edition opened by an editor before the list's time (possibly empty then).
_EARLY = (EditionStatus.DRAFT, EditionStatus.SKIPPED)


def _schedule_early(
    session: Session, edition: Edition, moment: datetime, *, now: datetime, settings: Settings
) -> None:
    """An auto list's early edition goes at the list's time, with the posts published since.

    Claimed first by a conditional UPDATE (see :mod:`newsletter.editions.lifecycle`): of two
    dispatchers at once, the second matches nothing and leaves the posts alone.
    """
    nl = edition.newsletter_list
    cutoff = edition_cutoff(nl.schedule, nl.timezone, edition.edition_date, now)
    if edition.status == EditionStatus.DRAFT:
        claimed = lifecycle.approve_early(session, edition, moment)
    else:  # skipped while empty: look again once, for what came before the list's time
        claimed = lifecycle.claim_skipped(session, edition, cutoff)
    if not claimed:
        return
    refresh_posts(session, edition, now=now, settings=settings)
    if edition.status == EditionStatus.DRAFT:  # was skipped, has posts now
        lifecycle.approve_early(session, edition, moment)


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
        if lifecycle.miss(session, edition_id, _missed_reason(moment, now)):
            log.warning("edition %s missed: %s", edition_id, _missed_reason(moment, now))
