"""The admin's tables: posts, subscribers, editions, and the lists with their schedules (the
one table with a form: a list's schedule, timezone, approval rule, story detail and
tracking)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from croniter import croniter
from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from newsletter.db import session_scope
from newsletter.lists.schedule import ScheduleError, zone
from newsletter.lists.service import change_schedule, find_list
from newsletter.lists.tracking import (
    CLICK_TRACKING_MEANS,
    TRACK_OPENS_MEANS,
    UTM_TAGS_MEANS,
    change_tracking,
)
from newsletter.models import (
    ClickTracking,
    Edition,
    EditionStatus,
    NewsletterList,
    StoryDetail,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from newsletter.posts.search import posts_matching
from newsletter.subscriptions.search import subscribers_matching
from newsletter.web.admin.common import BadFilter, admin_page, back, chosen_status
from newsletter.web.admin.display import Pager, local_time, not_found
from newsletter.web.context import now, web

router = APIRouter(prefix="/admin", tags=["admin"])

PageNumber = Annotated[int, Query(ge=1, le=100_000, description="Page, from 1.")]
Search = Annotated[str, Query(max_length=200, description="Text to look for.")]
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
STORY_DETAILS = {
    StoryDetail.DEK: "the dek and opening paragraph",
    StoryDetail.FIRST_SECTION: "the dek and the first section",
    StoryDetail.ALL_SECTIONS: "the dek and every section",
}


def _page_of(session: Session, query: Select[Any], pager: Pager) -> list[Any]:
    return list(session.scalars(query.offset(pager.offset).limit(pager.size)).unique())


def _count(session: Session, query: Select[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def editions_of(list_id: int | None) -> Select[Edition]:
    query = select(Edition).order_by(Edition.edition_date.desc(), Edition.id.desc())
    return query if list_id is None else query.where(Edition.list_id == list_id)


def next_run(nl: NewsletterList, moment: datetime) -> datetime | None:
    """When the list's schedule fires next, on its own clock; None if it never does."""
    try:
        following: datetime = croniter(nl.schedule, moment.astimezone(zone(nl.timezone))).get_next(
            datetime
        )
    except (ValueError, KeyError, ScheduleError):  # a schedule stored before validation
        return None
    return following


@dataclass(frozen=True)
class ListSettings:
    """The form of one list: what an editor may change about when it goes out, what its
    stories show and what its emails track (None: as stored)."""

    schedule: str
    timezone: str
    requires_approval: bool
    weekly_day: int
    story_detail: StoryDetail | None
    click_tracking: ClickTracking | None = None
    track_opens: bool | None = None
    utm_tags: bool | None = None

    @classmethod
    def of(cls, nl: NewsletterList) -> ListSettings:
        return cls(
            nl.schedule, nl.timezone, nl.requires_approval, nl.weekly_day, nl.story_detail,
            nl.click_tracking, nl.track_opens, nl.utm_tags,
        )  # fmt: skip


@router.get("/posts", response_class=HTMLResponse, summary="Posts, newest first")
def posts(request: Request, q: Search = "", page: PageNumber = 1) -> HTMLResponse:
    with session_scope(web(request).settings.database_url) as session:
        query = posts_matching(q)
        pager = Pager(page, _count(session, query), "/admin/posts", (("q", q),))
        return admin_page(
            request, "posts.html", q=q, pager=pager, posts=_page_of(session, query, pager),
            local_time=local_time,
        )  # fmt: skip


@router.get("/subscribers", response_class=HTMLResponse, summary="Subscribers")
def subscribers(
    request: Request,
    q: Search = "",
    status: Annotated[
        str, Query(max_length=20, description="Subscription status; empty: any.")
    ] = "",
    page: PageNumber = 1,
) -> HTMLResponse:
    statuses = [s.value for s in SubscriptionStatus]
    try:
        wanted = chosen_status(request, status, SubscriptionStatus)
    except BadFilter as bad:
        return bad.response
    with session_scope(web(request).settings.database_url) as session:
        query = subscribers_matching(q, status=wanted).options(
            selectinload(Subscriber.subscriptions).joinedload(Subscription.newsletter_list)
        )
        pager = Pager(
            page, _count(session, subscribers_matching(q, status=wanted)), "/admin/subscribers",
            (("q", q), ("status", status)),
        )  # fmt: skip
        return admin_page(
            request, "subscribers.html", q=q, status=status, pager=pager,
            statuses=statuses,
            subscribers=_page_of(session, query, pager), local_time=local_time,
        )  # fmt: skip


@router.get("/editions", response_class=HTMLResponse, summary="Editions, newest first")
def editions(
    request: Request,
    list_slug: Annotated[str, Query(alias="list", max_length=64)] = "",
    page: PageNumber = 1,
) -> HTMLResponse:
    with session_scope(web(request).settings.database_url) as session:
        nl = find_list(session, list_slug) if list_slug else None
        if list_slug and nl is None:
            return not_found(request, f"There is no list {list_slug!r}.")
        query = editions_of(nl.id if nl else None).options(joinedload(Edition.newsletter_list))
        pager = Pager(
            page, _count(session, editions_of(nl.id if nl else None)), "/admin/editions",
            (("list", list_slug),),
        )  # fmt: skip
        return admin_page(
            request, "editions.html", pager=pager, editions=_page_of(session, query, pager),
            chosen=list_slug, lists=session.scalars(select(NewsletterList)).all(),
            local_time=local_time, skipped=EditionStatus.SKIPPED,
        )  # fmt: skip


def _lists_page(
    request: Request,
    *,
    errors: dict[str, str] | None = None,
    typed: dict[str, ListSettings] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    moment = now(request)
    with session_scope(web(request).settings.database_url) as session:
        lists = session.scalars(select(NewsletterList).order_by(NewsletterList.name)).all()
        forms = {nl.slug: ListSettings.of(nl) for nl in lists} | (typed or {})
        return admin_page(
            request, "lists.html", status_code=status_code, lists=lists, forms=forms,
            errors=errors or {}, next_runs={nl.slug: next_run(nl, moment) for nl in lists},
            weekdays=WEEKDAYS, story_details=STORY_DETAILS, local_time=local_time,
            click_tracking=CLICK_TRACKING_MEANS, opens_means=TRACK_OPENS_MEANS,
            utm_means=UTM_TAGS_MEANS,
        )  # fmt: skip


@router.get("/lists", response_class=HTMLResponse, summary="Lists and their schedules")
def lists_page(request: Request) -> HTMLResponse:
    return _lists_page(request)


@router.post(
    "/lists/{slug}",
    response_class=HTMLResponse,
    summary="Change a list's schedule, timezone, approval rule, story detail and tracking",
    responses={400: {"description": "Not a usable cron expression, timezone or choice"}},
)
def update_list(
    request: Request,
    slug: Annotated[str, Path(max_length=64)],
    schedule: Annotated[str, Form(max_length=100)],
    timezone: Annotated[str, Form(max_length=64)],
    weekly_day: Annotated[int, Form(ge=0, le=6)] = 6,
    requires_approval: Annotated[bool, Form()] = False,
    story_detail: Annotated[StoryDetail | None, Form()] = None,
    click_tracking: Annotated[ClickTracking | None, Form()] = None,
    track_opens: Annotated[bool | None, Form()] = None,
    utm_tags: Annotated[bool | None, Form()] = None,
) -> Response:
    wanted = ListSettings(
        schedule, timezone, requires_approval, weekly_day, story_detail,
        click_tracking, track_opens, utm_tags,
    )  # fmt: skip
    try:
        with session_scope(web(request).settings.database_url) as session:
            nl = find_list(session, slug)
            if nl is None:
                return not_found(request, f"There is no list {slug!r}.")
            change_schedule(
                nl, schedule=wanted.schedule, timezone=wanted.timezone,
                requires_approval=wanted.requires_approval, weekly_day=wanted.weekly_day,
            )  # fmt: skip
            if wanted.story_detail is not None:
                nl.story_detail = wanted.story_detail
            change_tracking(
                nl, click_tracking=wanted.click_tracking, track_opens=wanted.track_opens,
                utm_tags=wanted.utm_tags,
            )  # fmt: skip
            name = nl.name
    except ScheduleError as error:
        return _lists_page(
            request, errors={slug: f"{error}."}, typed={slug: wanted}, status_code=400
        )
    return back(request, "/admin/lists", f"Saved the settings of {name}.")
