"""The editor JSON API, version 1: the admin's operations for the CMS and scripts.

Every route needs an editor API token (``Authorization: Bearer nlt_...``). Each request is
one unit of work; the domain's refusals become ``{"detail": "..."}`` answers and roll it
back: an unknown edition or list is 404, an edition that cannot do what was asked in its
state is 409, a malformed request is 422. Work for the workers (a send, a test copy) is
enqueued only after the commit, so a worker never looks for a row that is not there yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from starlette.exceptions import HTTPException

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.send import progress
from newsletter.digest.schedule import ScheduleError
from newsletter.editions import service as editions
from newsletter.editions.service import EditionError, EditionNotFound, Touches, get_edition
from newsletter.lists.service import ListError, change_schedule, get_list
from newsletter.models import (
    Edition,
    EditionStatus,
    Editor,
    Frequency,
    NewsletterList,
    Post,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from newsletter.posts.ingest import upsert_posts
from newsletter.posts.search import posts_matching
from newsletter.subscriptions.addresses import InvalidAddress, normalise_address
from newsletter.subscriptions.search import subscribers_matching
from newsletter.web.api import Problem
from newsletter.web.auth import require_api_editor
from newsletter.web.context import now, web
from newsletter.web.editor_schemas import (
    EditionDetail,
    EditionPage,
    EditionPatch,
    EditionSummary,
    ListPatch,
    ListSettings,
    NoNul,
    PostOut,
    PostPage,
    PostPush,
    PostPushed,
    ProgressOut,
    Queued,
    Refreshed,
    ScheduleRequest,
    SubscriberOut,
    SubscriberPage,
    TestRequest,
)

router = APIRouter(
    prefix="/api/v1",
    tags=["editor api"],
    dependencies=[Depends(require_api_editor)],
    responses={
        401: {"model": Problem, "description": "No API token, or an unknown or revoked one."},
        422: {"model": Problem, "description": "The request is malformed; the detail says how."},
    },
)

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such edition."}
}
REFUSED: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    409: {"model": Problem, "description": "The edition's state does not allow it."},
}
LIST_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such list."}
}

EditionId = Annotated[int, Path(ge=1, le=2_147_483_647, description="The edition's ID.")]
Slug = Annotated[str, Path(max_length=64, description="The list's slug."), NoNul]
PageNumber = Annotated[int, Query(ge=1, le=100_000)]
PerPage = Annotated[int, Query(ge=1, le=100)]
Search = Annotated[str, Query(max_length=200), NoNul]
ListSlug = Annotated[str, Query(alias="list", max_length=64, description="A list's slug."), NoNul]
ApiEditor = Annotated[Editor, Depends(require_api_editor)]

Row = TypeVar("Row")


@contextmanager
def unit_of_work(request: Request) -> Iterator[Session]:
    """One transaction for the request: committed on success, rolled back on a refusal."""
    try:
        with session_scope(web(request).settings.database_url) as session:
            yield session
    except EditionNotFound as error:
        raise HTTPException(404, str(error)) from None
    except EditionError as error:
        raise HTTPException(409, str(error)) from None
    except ListError as error:
        raise HTTPException(404, str(error)) from None
    except (ScheduleError, InvalidAddress) as error:
        raise HTTPException(422, str(error)) from None


def _paginate(
    session: Session, query: Select[Row], page: int, per_page: int
) -> tuple[list[Row], int]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all()
    return list(rows), total or 0


def _list(session: Session, slug: str) -> NewsletterList:
    nl = get_list(session, slug)
    assert nl is not None  # get_list raises ListError rather than return None
    return nl


def _detail(session: Session, edition: Edition, settings: Settings) -> EditionDetail:
    # progress() refreshes the edition from the database: write the changes out first.
    session.flush()
    return EditionDetail.build(edition, progress(session, edition.id), settings)


Change = Callable[[Session, Edition, Settings], object]


def _with_edition(request: Request, edition_id: int, change: Change) -> EditionDetail:
    """The edition after ``change`` (none, to read it), committed; a refusal rolls it back."""
    settings = web(request).settings
    with unit_of_work(request) as session:
        edition = get_edition(session, edition_id)
        change(session, edition, settings)
        return _detail(session, edition, settings)


# --- Posts ---------------------------------------------------------------------------------


@router.post(
    "/posts",
    status_code=201,
    response_model=PostPushed,
    responses={
        200: {"model": PostPushed, "description": "A post with this GUID was already stored."},
        413: {"description": "The request body is over the web app's size limit."},
    },
    summary="Store a post as the CMS publishes it (idempotent on its GUID)",
)
def push_post(request: Request, response: Response, body: PostPush) -> PostPushed:
    """201 the first time; 200 after, updated in place if its content changed. The HTML is
    sanitised as for any imported post: scripts, handlers, styles and images are dropped."""
    for attempt in (1, 2):
        try:
            with unit_of_work(request) as session:
                report = upsert_posts(session, [body])
                post = session.get_one(Post, report.post_ids[0])
                result = (
                    "created" if report.created else "updated" if report.updated else "unchanged"
                )
                pushed = PostPushed(**PostOut.of(post).model_dump(), result=result)
        except IntegrityError:
            # The same new GUID pushed twice at once: the other push stored it; now it is an
            # update (or nothing) for this one.
            if attempt == 2:
                raise
            continue
        if result != "created":
            response.status_code = 200
        return pushed
    raise AssertionError("unreachable")


@router.get("/posts", response_model=PostPage, summary="Posts, newest first; search titles")
def list_posts(
    request: Request,
    q: Search = "",
    page: PageNumber = 1,
    per_page: PerPage = 50,
) -> PostPage:
    with unit_of_work(request) as session:
        posts, total = _paginate(session, posts_matching(q), page, per_page)
        return PostPage(
            items=[PostOut.of(p) for p in posts], page=page, per_page=per_page, total=total
        )


# --- Editions ------------------------------------------------------------------------------


@router.get(
    "/editions",
    response_model=EditionPage,
    responses=LIST_NOT_FOUND,
    summary="Editions, newest first; by list and status",
)
def list_editions(
    request: Request,
    list_slug: ListSlug = "",
    status: EditionStatus | None = None,
    page: PageNumber = 1,
    per_page: PerPage = 50,
) -> EditionPage:
    query = (
        select(Edition)
        .options(selectinload(Edition.newsletter_list))
        .order_by(Edition.edition_date.desc(), Edition.id.desc())
    )
    if status is not None:
        query = query.where(Edition.status == status)
    with unit_of_work(request) as session:
        if list_slug:
            query = query.where(Edition.list_id == _list(session, list_slug).id)
        rows, total = _paginate(session, query, page, per_page)
        return EditionPage(
            items=[EditionSummary.of(e) for e in rows], page=page, per_page=per_page, total=total
        )


@router.get(
    "/editions/{edition_id}",
    response_model=EditionDetail,
    responses=NOT_FOUND,
    summary="One edition: its state, words, posts in order and sending progress",
)
def read_edition(request: Request, edition_id: EditionId) -> EditionDetail:
    return _with_edition(request, edition_id, lambda *_: None)


@router.get(
    "/editions/{edition_id}/progress",
    response_model=ProgressOut,
    responses=NOT_FOUND,
    summary="Sending progress: deliveries by state",
)
def edition_progress(request: Request, edition_id: EditionId) -> ProgressOut:
    with unit_of_work(request) as session:
        get_edition(session, edition_id)
        return ProgressOut.of(progress(session, edition_id))


@router.get(
    "/editions/{edition_id}/html",
    response_class=HTMLResponse,
    responses=NOT_FOUND,
    summary="The stored HTML email (reader placeholders not filled in)",
)
def edition_html(request: Request, edition_id: EditionId) -> HTMLResponse:
    with unit_of_work(request) as session:
        return HTMLResponse(get_edition(session, edition_id).html)


@router.get(
    "/editions/{edition_id}/text",
    response_class=PlainTextResponse,
    responses=NOT_FOUND,
    summary="The stored plain-text email (reader placeholders not filled in)",
)
def edition_text(request: Request, edition_id: EditionId) -> PlainTextResponse:
    with unit_of_work(request) as session:
        return PlainTextResponse(get_edition(session, edition_id).text)


@router.post(
    "/lists/{slug}/editions",
    status_code=201,
    response_model=EditionDetail,
    responses={
        **LIST_NOT_FOUND,
        200: {"model": EditionDetail, "description": "Today's edition existed already."},
    },
    summary="Today's edition of the list, built now as a draft if need be",
)
def prepare_todays_edition(
    request: Request, response: Response, slug: Slug, frequency: Frequency = Frequency.DAILY
) -> EditionDetail:
    settings = web(request).settings
    with unit_of_work(request) as session:
        result = editions.todays_edition(
            session, _list(session, slug), now=now(request), settings=settings, frequency=frequency
        )
        if not result.created:
            response.status_code = 200
        return _detail(session, result.edition, settings)


def _apply(session: Session, edition: Edition, patch: EditionPatch, settings: Settings) -> None:
    for post_id in patch.remove or []:
        editions.remove_post(session, edition, post_id, settings)
    if patch.order is not None:
        editions.reorder(session, edition, patch.order, settings)
    if patch.pinned is not None:
        wanted = set(patch.pinned)
        strangers = wanted - {item.post_id for item in edition.items}
        if strangers:
            raise EditionError(f"Post {min(strangers)} is not in this edition.")
        # Only the posts whose pin changes: each change re-renders the email.
        for item in list(edition.items):
            if item.pinned != (item.post_id in wanted):
                editions.pin(session, edition, item.post_id, not item.pinned, settings)
    touches = Touches(intro=patch.intro, subject=patch.subject, preheader=patch.preheader)
    if touches != Touches():
        editions.edit(session, edition, touches, settings)


@router.patch(
    "/editions/{edition_id}",
    response_model=EditionDetail,
    responses=REFUSED,
    summary="Change a draft or scheduled edition: words, order, pins, posts",
)
def change_edition(request: Request, edition_id: EditionId, patch: EditionPatch) -> EditionDetail:
    """All the changes, or none of them if one is refused."""
    return _with_edition(
        request, edition_id, lambda db, edition, settings: _apply(db, edition, patch, settings)
    )


@router.post(
    "/editions/{edition_id}/render",
    response_model=EditionDetail,
    responses=REFUSED,
    summary="Render the email again from its posts and words",
)
def render_again(request: Request, edition_id: EditionId) -> EditionDetail:
    return _with_edition(
        request, edition_id, lambda _, edition, settings: editions.rerender(edition, settings)
    )


@router.post(
    "/editions/{edition_id}/refresh",
    response_model=Refreshed,
    responses=REFUSED,
    summary="Add the posts published since the edition was built",
)
def refresh(request: Request, edition_id: EditionId) -> Refreshed:
    settings = web(request).settings
    with unit_of_work(request) as session:
        edition = get_edition(session, edition_id)
        added = editions.refresh_posts(session, edition, now=now(request), settings=settings)
        return Refreshed(added=added, edition=_detail(session, edition, settings))


@router.post(
    "/editions/{edition_id}/test",
    status_code=202,
    response_model=Queued,
    responses=REFUSED,
    summary="Mail a [TEST] copy (to you, or to the address given); readers are untouched",
)
def send_test(
    request: Request,
    edition_id: EditionId,
    editor: ApiEditor,
    body: Annotated[TestRequest | None, Body()] = None,
) -> Queued:
    address = body.address if body is not None and body.address else editor.email
    with unit_of_work(request) as session:
        address = normalise_address(address)
        edition = get_edition(session, edition_id)
        if not edition.items:
            raise EditionError(
                f"This edition is {edition.status.value} and holds no posts: there is "
                "nothing to send."
            )
    web(request).editions.test(edition_id, address)
    return Queued(status="queued", message=f"A test copy is on its way to {address}.")


@router.post(
    "/editions/{edition_id}/send",
    status_code=202,
    response_model=EditionDetail,
    responses=REFUSED,
    summary="Send now: the workers start at once",
)
def send_now(request: Request, edition_id: EditionId) -> EditionDetail:
    """Scheduled for now and handed to the workers, which create the deliveries: a big
    list takes seconds, too long to hold the request."""
    moment = now(request)
    detail = _with_edition(
        request, edition_id, lambda _, edition, __: editions.schedule(edition, moment, now=moment)
    )
    web(request).editions.send(edition_id)
    return detail


@router.post(
    "/editions/{edition_id}/schedule",
    response_model=EditionDetail,
    responses=REFUSED,
    summary="Approve the edition to go out at a given time",
)
def schedule_at(request: Request, edition_id: EditionId, body: ScheduleRequest) -> EditionDetail:
    return _with_edition(
        request,
        edition_id,
        lambda _, edition, __: editions.schedule(edition, body.at, now=now(request)),
    )


@router.post(
    "/editions/{edition_id}/pause",
    response_model=EditionDetail,
    responses=REFUSED,
    summary="Stop a send where it is (within one group of messages)",
)
def pause(request: Request, edition_id: EditionId) -> EditionDetail:
    return _with_edition(request, edition_id, lambda db, edition, _: editions.pause(db, edition))


@router.post(
    "/editions/{edition_id}/resume",
    status_code=202,
    response_model=EditionDetail,
    responses=REFUSED,
    summary="Carry on a paused send where it stopped",
)
def resume(request: Request, edition_id: EditionId) -> EditionDetail:
    detail = _with_edition(request, edition_id, lambda db, edition, _: editions.resume(db, edition))
    web(request).editions.send(edition_id)
    return detail


@router.post(
    "/editions/{edition_id}/cancel",
    response_model=EditionDetail,
    responses=REFUSED,
    summary="Call the edition off; readers not yet sent to never will be",
)
def cancel(request: Request, edition_id: EditionId) -> EditionDetail:
    return _with_edition(
        request, edition_id, lambda db, edition, _: editions.cancel(db, edition, now=now(request))
    )


# --- Subscribers and lists -----------------------------------------------------------------


@router.get(
    "/subscribers",
    response_model=SubscriberPage,
    responses=LIST_NOT_FOUND,
    summary="Readers, newest first; search addresses, filter by list and subscription status",
)
def list_subscribers(
    request: Request,
    q: Search = "",
    status: SubscriptionStatus | None = None,
    list_slug: ListSlug = "",
    page: PageNumber = 1,
    per_page: PerPage = 50,
) -> SubscriberPage:
    with unit_of_work(request) as session:
        list_id = _list(session, list_slug).id if list_slug else None
        query = subscribers_matching(q, status=status, list_id=list_id).options(
            selectinload(Subscriber.subscriptions).selectinload(Subscription.newsletter_list)
        )
        rows, total = _paginate(session, query, page, per_page)
        return SubscriberPage(
            items=[SubscriberOut.of(s) for s in rows], page=page, per_page=per_page, total=total
        )


@router.patch(
    "/lists/{slug}",
    response_model=ListSettings,
    responses=LIST_NOT_FOUND,
    summary="Change a list's schedule, timezone, approval and weekly day",
)
def change_list(request: Request, slug: Slug, patch: ListPatch) -> ListSettings:
    """The schedule and timezone are checked together: a 422 says what is wrong."""
    with unit_of_work(request) as session:
        nl = _list(session, slug)
        change_schedule(
            nl, schedule=patch.schedule, timezone=patch.timezone,
            requires_approval=patch.requires_approval, weekly_day=patch.weekly_day,
        )  # fmt: skip
        return ListSettings.of(nl)
