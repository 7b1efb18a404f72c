"""The dashboard: the lists and their readers, what goes out next, how the last sends went,
and the feeds that need a look. Also, for a list with no edition today, the button that
prepares one; for a list with one, where it stands and a link to it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, joinedload

from newsletter.db import session_scope
from newsletter.delivery.progress import Progress, progress
from newsletter.editions.service import todays_edition
from newsletter.inbound import stats
from newsletter.lists.schedule import local_date
from newsletter.lists.service import find_list
from newsletter.models import (
    Edition,
    EditionStatus,
    Feed,
    Frequency,
    NewsletterList,
    Subscription,
    SubscriptionStatus,
)
from newsletter.web.admin.common import admin_page, back
from newsletter.web.admin.display import clock_time, local_time, not_found
from newsletter.web.context import now, web

router = APIRouter(prefix="/admin", tags=["admin"])

Slug = Annotated[str, Path(max_length=64, description="The list's slug.")]
UPCOMING = (EditionStatus.SCHEDULED, EditionStatus.DRAFT)
SENDS = (EditionStatus.SENDING, EditionStatus.PAUSED, EditionStatus.SENT)


@dataclass(frozen=True)
class ListReaders:
    newsletter_list: NewsletterList
    confirmed: int
    pending: int
    unsubscribed: int


def list_readers(session: Session) -> list[ListReaders]:
    """Every list with its subscriptions counted by status, in one grouped query."""
    counts: dict[int, dict[SubscriptionStatus, int]] = defaultdict(dict)
    rows = session.execute(
        select(Subscription.list_id, Subscription.status, func.count()).group_by(
            Subscription.list_id, Subscription.status
        )
    )
    for list_id, status, count in rows:
        counts[list_id][status] = int(count)
    return [
        ListReaders(
            nl,
            confirmed=counts[nl.id].get(SubscriptionStatus.CONFIRMED, 0),
            pending=counts[nl.id].get(SubscriptionStatus.PENDING, 0),
            unsubscribed=counts[nl.id].get(SubscriptionStatus.UNSUBSCRIBED, 0),
        )
        for nl in session.scalars(select(NewsletterList).order_by(NewsletterList.name))
    ]


def todays_editions(
    session: Session, lists: list[NewsletterList], *, now: datetime
) -> dict[int, Edition]:
    """Each list's daily edition for today in its own timezone, by list id, where there is
    one: what "Prepare today's edition" would build, or open."""
    if not lists:
        return {}
    today = [
        and_(Edition.list_id == nl.id, Edition.edition_date == local_date(nl.timezone, now))
        for nl in lists
    ]
    editions = session.scalars(
        select(Edition).where(Edition.frequency == Frequency.DAILY, or_(*today))
    )
    return {edition.list_id: edition for edition in editions}


def upcoming_editions(session: Session, limit: int = 10) -> list[Edition]:
    """Drafts and scheduled editions, soonest first: what readers get next."""
    return list(
        session.scalars(
            select(Edition)
            .options(joinedload(Edition.newsletter_list))
            .where(Edition.status.in_(UPCOMING), Edition.scheduled_at.is_not(None))
            .order_by(Edition.scheduled_at, Edition.id)
            .limit(limit)
        )
    )


def recent_sends(
    session: Session, *, now: datetime, limit: int = 10
) -> list[tuple[Edition, Progress]]:
    """The latest editions that went (or are going) out, with their delivery counts."""
    editions = session.scalars(
        select(Edition)
        .options(joinedload(Edition.newsletter_list))
        .where(Edition.status.in_(SENDS))
        .order_by(Edition.send_started_at.desc().nulls_last(), Edition.id.desc())
        .limit(limit)
    ).all()
    return [(edition, progress(session, edition.id, now=now)) for edition in editions]


def troubled_feeds(session: Session) -> list[Feed]:
    """Feeds that stopped (paused after repeated errors) or failed their last polls."""
    return list(
        session.scalars(
            select(Feed)
            .where(or_(Feed.paused_at.is_not(None), Feed.consecutive_errors > 0))
            .order_by(Feed.paused_at.is_(None), Feed.consecutive_errors.desc(), Feed.id)
        )
    )


@router.get("", response_class=HTMLResponse, summary="Dashboard")
def dashboard(request: Request) -> HTMLResponse:
    moment = now(request)
    with session_scope(web(request).settings.database_url) as session:
        lists = list_readers(session)
        rates = [
            (row.newsletter_list, stats.list_rates(session, row.newsletter_list.id, now=moment))
            for row in lists
        ]
        return admin_page(
            request, "dashboard.html", lists=lists, rates=rates,
            today=todays_editions(session, [row.newsletter_list for row in lists], now=moment),
            complaint_limit=stats.GMAIL_COMPLAINT_LIMIT,
            refusals=stats.sender_refusals(session, now=moment),
            blocked=stats.blocked_count(session),
            upcoming=upcoming_editions(session), sends=recent_sends(session, now=moment),
            feeds=troubled_feeds(session), local_time=local_time, clock_time=clock_time,
            now=moment,
        )  # fmt: skip


@router.post(
    "/lists/{slug}/today",
    response_class=HTMLResponse,
    summary="Prepare today's edition of a list",
    description="Builds today's edition (a draft before the list's time) and opens it.",
)
def prepare_today(request: Request, slug: Slug) -> Response:
    settings = web(request).settings
    with session_scope(settings.database_url) as session:
        nl = find_list(session, slug)
        if nl is None:
            return not_found(request, f"There is no list {slug!r}.")
        result = todays_edition(session, nl, now=now(request), settings=settings)
        edition = result.edition
        if edition.status == EditionStatus.SKIPPED:
            flash = f"Today's edition has no posts yet: {edition.skip_reason}."
        elif result.created:
            flash = f"Today's edition of {nl.name} is ready as a {edition.status.value}."
        else:
            flash = f"Today's edition of {nl.name} already exists: here it is."
        edition_id = edition.id
    return back(request, f"/admin/editions/{edition_id}", flash)
