"""The editor JSON API, version 1: the admin's operations for the CMS and scripts.

Every route needs an editor API token (``Authorization: Bearer nlt_...``). Each request is
one unit of work; the domain's refusals become ``{"detail": "..."}`` answers and roll it
back: an unknown edition or list is 404, an edition that cannot do what was asked in its
state is 409, a malformed request is 422. Work for the workers (a send, a test copy) is
enqueued only after the commit, so a worker never looks for a row that is not there yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from newsletter.config import Settings
from newsletter.delivery.progress import Progress, progress
from newsletter.editions import service as editions
from newsletter.editions.service import EditionError, Touches, get_edition
from newsletter.inbound.stats import edition_outcomes
from newsletter.lists.service import get_list
from newsletter.models import (
    Edition,
    EditionStatus,
    Frequency,
)
from newsletter.subscriptions.addresses import normalise_address
from newsletter.web.context import hand_over_send, now, web
from newsletter.web.editor_common import (
    LIST_NOT_FOUND,
    NOT_FOUND,
    REFUSED,
    ROUTER_SETTINGS,
    ApiEditor,
    EditionId,
    ListSlug,
    PageNumber,
    PerPage,
    Slug,
    paginate,
    unit_of_work,
)
from newsletter.web.editor_schemas import (
    EditionDetail,
    EditionPage,
    EditionPatch,
    EditionSummary,
    Queued,
    Refreshed,
    ScheduleRequest,
    TestRequest,
)

router = APIRouter(**ROUTER_SETTINGS)


def _detail(request: Request, session: Session, edition: Edition) -> EditionDetail:
    # progress() refreshes the edition from the database: write the changes out first.
    session.flush()
    state = progress(session, edition.id, now=now(request))
    outcomes = edition_outcomes(session, edition.id)
    return EditionDetail.build(edition, state, outcomes, web(request).settings)


Change = Callable[[Session, Edition, Settings], object]


def _with_edition(request: Request, edition_id: int, change: Change) -> EditionDetail:
    """The edition after ``change`` (none, to read it), committed; a refusal rolls it back."""
    settings = web(request).settings
    with unit_of_work(request) as session:
        edition = get_edition(session, edition_id)
        change(session, edition, settings)
        return _detail(request, session, edition)


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
            query = query.where(Edition.list_id == get_list(session, list_slug).id)
        rows, total = paginate(session, query, page, per_page)
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
    response_model=Progress,
    responses=NOT_FOUND,
    summary="Sending progress: deliveries by state",
)
def edition_progress(request: Request, edition_id: EditionId) -> Progress:
    with unit_of_work(request) as session:
        get_edition(session, edition_id)
        return progress(session, edition_id, now=now(request))


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
            session,
            get_list(session, slug),
            now=now(request),
            settings=settings,
            frequency=frequency,
        )
        if not result.created:
            response.status_code = 200
        return _detail(request, session, result.edition)


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
    summary="Add the posts that belong in it and arrived since it was built, late ones included",
)
def refresh(request: Request, edition_id: EditionId) -> Refreshed:
    settings = web(request).settings
    with unit_of_work(request) as session:
        edition = get_edition(session, edition_id)
        added = editions.refresh_posts(session, edition, now=now(request), settings=settings)
        return Refreshed(added=added, edition=_detail(request, session, edition))


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
    web(request).handoff.send_test(edition_id, address)
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
        request,
        edition_id,
        lambda db, edition, _: editions.schedule(db, edition, moment, now=moment),
    )
    hand_over_send(request, edition_id)
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
        lambda db, edition, _: editions.schedule(db, edition, body.at, now=now(request)),
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
    hand_over_send(request, edition_id)
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
